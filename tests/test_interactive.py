"""Missing arguments in a terminal open pickers (driven here through a real pseudo-terminal);
`mao` alone opens the launcher menu."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Mao
from processes import stop


class Terminal:
    """`mao` on a pseudo-terminal: read until a prompt shows, then type an answer."""

    def __init__(self, home: Path, *args: str) -> None:
        self.master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if k != "MAO_NO_INPUT"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "maomao", *args],
            stdin=slave, stdout=slave, stderr=slave, env={**env, "MAO_HOME": str(home), "COLUMNS": "120"},
            close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; screen so far:\n{self.seen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096).decode(errors="replace")
                except OSError:
                    chunk = ""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited before {text!r}:\n{self.seen}")
                self.seen += chunk
        return self.seen

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\r").encode())

    def wait(self, timeout: float = 20) -> int:
        try:
            while self.proc.poll() is None:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if ready:
                    try:
                        self.seen += os.read(self.master, 4096).decode(errors="replace")
                    except OSError:
                        break
                timeout -= 0.1
                assert timeout > 0, self.seen
            return self.proc.wait(timeout=5)
        finally:
            self.close()

    def close(self) -> None:
        stop(self.proc)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    """``terminal(home, *args)``: `mao` on a pseudo-terminal, stopped when the test ends."""
    opened: list[Terminal] = []

    def open_terminal(home: Path, *args: str) -> Terminal:
        opened.append(Terminal(home, *args))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def test_retrieve_pickers_walk_hub_date_operator(
    operator_home, bare_repo, git_config, tmp_path: Path, terminal
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = operator_home("alice"), operator_home("bob")
    for hub, date in (("dockerhub", "2026-11-01"), ("helm", "2026-11-02"), ("helm", "2026-11-03")):
        data = tmp_path / f"{hub}-{date}"
        data.mkdir()
        (data / "rows.csv").write_text(f"a,b\n{hub},{date}\n")
        result = alice("dataset", "publish", str(data), "--hub", hub, "--date", date, "--dataset", "rows",
                       "--remote", str(bare_repo(f"{hub}-{date}.git")))  # fmt: skip
        assert result.code == 0, result.err
    term = terminal(bob.home, "dataset", "retrieve")
    screen = term.expect("hub [1]:")
    assert "1) dockerhub" in screen and "2) helm" in screen
    term.type("2")
    screen = term.expect("date [1]:")
    assert screen.index("2026-11-03") < screen.index("2026-11-02")  # newest first
    term.type("2")
    term.expect("operator: alice")  # only one operator has data: chosen without asking
    assert term.wait() == 0, term.seen
    assert (bob.home / "imports" / "helm" / "2026-11-02" / "alice" / "rows" / "rows.csv").exists()


def test_launcher_menu_runs_commands_until_quit(operator_home, terminal) -> None:  # type: ignore[no-untyped-def]
    alice: Mao = operator_home("alice")
    term = terminal(alice.home)
    term.expect("action [1]:")
    term.type("2")  # members
    term.expect("(none)")
    term.expect("action [1]:")
    term.type("8")  # quit
    assert term.wait() == 0


def test_init_asks_for_the_operator_in_a_terminal(tmp_path: Path, etcd, terminal) -> None:  # type: ignore[no-untyped-def]
    term = terminal(tmp_path / "h", "init", "--etcd", etcd.url)
    term.expect("Operator name")
    term.type("carol")
    assert term.wait() == 0, term.seen
    assert 'operator = "carol"' in (tmp_path / "h" / "config.toml").read_text()
