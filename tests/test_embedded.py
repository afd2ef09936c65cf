"""The embedded etcd dies with the node that started it (without code between fork and exec)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import free_port, healthy, wait_until
from maomao.pids import pid_alive
from processes import stop

NODE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from maomao.etcd.server import EmbeddedEtcd
    root = Path(sys.argv[1])
    etcd = EmbeddedEtcd("solo", root / "data", int(sys.argv[2]), int(sys.argv[3]))
    process = etcd.start(root / "etcd.log")
    print(process.pid, flush=True)
    time.sleep(120)
    """
)


def test_a_killed_node_takes_its_embedded_etcd_with_it(tmp_path: Path) -> None:
    client = free_port()
    node = subprocess.Popen(
        [sys.executable, "-c", NODE, str(tmp_path), str(client), str(free_port())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    etcd_pid = 0
    try:
        assert node.stdout is not None
        etcd_pid = int(node.stdout.readline())
        assert healthy(f"http://127.0.0.1:{client}")
        assert Path(f"/proc/{etcd_pid}/exe").resolve().name == "etcd"  # setpriv exec'd etcd: same pid
        node.send_signal(signal.SIGKILL)
        node.wait(10)
        wait_until(lambda: not pid_alive(etcd_pid), 10, "etcd to die with its node")
    finally:
        stop(node)
        if etcd_pid and pid_alive(etcd_pid):
            subprocess.run(["kill", "-9", str(etcd_pid)], check=False)
