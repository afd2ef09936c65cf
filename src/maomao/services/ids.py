"""The one id scheme of maomao (runs, events): ``{time_ns:016x}-{8 hex}``.

Ids sort by creation time, as etcd keys and as file names (fixed width; within one
process strictly increasing, even when the wall clock steps back), are unique across
processes and hosts by their random part, and follow the naming rule of
:func:`maomao.keys.validate_name`.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last = 0


def new_id() -> str:
    """A new time-ordered, unique id that is a valid name."""
    global _last
    with _lock:
        _last = max(time.time_ns(), _last + 1)
        stamp = _last
    return f"{stamp:016x}-{os.urandom(4).hex()}"  # (the secrets module costs 13 ms to import)
