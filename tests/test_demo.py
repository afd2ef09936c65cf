"""`make demo`'s walkthrough runs unattended, exits 0 and leaves nothing running."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_end_to_end_and_stops_everything() -> None:
    before = _etcd_pids()
    proc = subprocess.run([sys.executable, "-m", "maomao", "demo"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for step in ("embedded single-member etcd", "retrieves exactly that commit", "registers a collector tool"):
        assert step in proc.stdout
    assert "error: tool 'hubstats' is owned by alice" in proc.stdout
    assert "published: advertised" in proc.stdout
    assert _etcd_pids() <= before  # every etcd the demo started is gone


def _etcd_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "etcdbin/etcd --name alice"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}
