"""maomao: the MAO-MAO collaborative research framework.

Operators run collector tools, publish the snapshots they produce through git, and
advertise them in a shared etcd cluster, so that any operator can find, retrieve,
compare and validate them. ``mao`` is the command line; the layers are described in
DESIGN.md.
"""

__version__ = "0.1.0"
