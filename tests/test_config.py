"""A bad config, home or setting is one `error:` line naming what is wrong and where.

Every case runs the real `mao` entry point on a real home; none needs etcd, since the
config is refused before any connection is tried (`mao down` reads the config and stops).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Reached by nothing: `init --etcd` does not connect, and the config is refused first.
DEAD_ETCD = "http://127.0.0.1:9"


def mao(home: Path | str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maomao", *args],
        env={**os.environ, "MAO_HOME": str(home), "MAO_NO_INPUT": "1", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str, code: int = 1) -> None:
    """Exit *code*, one ``error:`` line on stderr naming each of *names*, no internal error."""
    err = result.stderr
    assert result.returncode == code, (result.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An initialised home whose config the test then spoils."""
    where = tmp_path / "home"
    result = mao(where, "init", "--operator", "alice", "--etcd", DEAD_ETCD)
    assert result.returncode == 0, result.stderr
    return where


def with_settings(home: Path, top: str = "", **tables: str) -> Path:
    """Rewrite the config: *top* lines before the tables, then ``[table]`` lines of *tables*."""
    path = home / "config.toml"
    etcd = tables.pop("etcd", "")
    if "endpoints" not in etcd:
        etcd += f'\nendpoints = ["{DEAD_ETCD}"]'
    parts = [f'operator = "alice"\n{top}\n[etcd]\n{etcd}\n']
    parts += [f"[{table}]\n{body}\n" for table, body in tables.items()]
    path.write_text("".join(parts), encoding="utf-8")
    return path


def test_a_config_that_is_not_utf8_is_named(home: Path) -> None:
    (home / "config.toml").write_bytes(b'operator = "\xff\xfe"\n')
    assert_one_line_error(mao(home, "down"), str(home / "config.toml"), "UTF-8")


def test_a_config_that_is_not_toml_is_named(home: Path) -> None:
    (home / "config.toml").write_text("operator = \n", encoding="utf-8")
    assert_one_line_error(mao(home, "down"), str(home / "config.toml"))


def test_a_home_that_cannot_be_created_is_named() -> None:
    # /proc refuses new entries even to root, for whom permission bits do not count
    result = mao("/proc/1/maomao-home", "init", "--operator", "alice", "--etcd", DEAD_ETCD)
    assert_one_line_error(result, "/proc/1/maomao-home")


def test_a_home_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    where = tmp_path / "file" / "home"
    assert_one_line_error(mao(where, "init", "--operator", "alice", "--etcd", DEAD_ETCD), str(where))
    assert_one_line_error(mao(where, "down"), str(where))


def test_a_home_that_is_a_file_is_named(tmp_path: Path) -> None:
    where = tmp_path / "file"
    where.write_text("")
    for args in (("init", "--operator", "alice", "--etcd", DEAD_ETCD), ("down",), ("members",)):
        result = mao(where, *args)
        assert_one_line_error(result, str(where), "not a directory")


@pytest.mark.parametrize("template", ["git@h:{x}/{dataset}", "git@h:{0}.git", "git@h:{}", "git@h:{hub!r}"])
def test_unknown_remote_placeholders_are_refused_at_init(tmp_path: Path, template: str) -> None:
    result = mao(tmp_path / "h", "init", "--operator", "alice", "--etcd", DEAD_ETCD, "--git-remote", template)
    assert_one_line_error(result, "git.remote", "{hub}", "{dataset}", "{operator}")
    assert not (tmp_path / "h" / "config.toml").exists()


@pytest.mark.parametrize(
    "template", ["git@h:{x}/{dataset}", "git@h:{0}.git", "git@h:{hub", "git@h:{dataset:>9}"]
)
def test_unknown_remote_placeholders_are_refused_at_load(home: Path, template: str) -> None:
    path = with_settings(home, git=f"remote = {template!r}".replace("'", '"'))
    assert_one_line_error(mao(home, "down"), "git.remote", str(path), "{hub}", "{dataset}", "{operator}")


def test_known_remote_placeholders_load(home: Path) -> None:
    with_settings(home, git='remote = "git@h:{operator}/{hub}-{dataset}.git"')
    assert mao(home, "down").returncode == 0


@pytest.mark.parametrize(
    ("top", "tables", "setting"),
    [
        ('import_dir = "imports\\u0000x"', {}, "import_dir"),
        ("", {"git": 'ssh_key = "id\\u0000rsa"'}, "git.ssh_key"),
        ("", {"git": 'remote = "git@h:x\\u0000y"'}, "git.remote"),
        ("", {"etcd": 'user = "al\\u0000ice"'}, "etcd.user"),
    ],
)
def test_a_nul_in_a_setting_is_refused(home: Path, top: str, tables: dict[str, str], setting: str) -> None:
    path = with_settings(home, top, **tables)
    for command in ("down", "members"):
        assert_one_line_error(mao(home, command), setting, str(path), "NUL")


@pytest.mark.parametrize(
    ("top", "tables", "setting", "expected"),
    [
        ("", {"git": "ssh_key = [1]"}, "git.ssh_key", "string"),
        ("import_dir = 5", {}, "import_dir", "string"),
        ("", {"etcd": "endpoints = 5"}, "etcd.endpoints", "URLs"),
        ("", {"etcd": "endpoints = [1, 2]"}, "etcd.endpoints", "URLs"),
        ("", {"api": 'port = "x"'}, "api.port", "integer"),
        ("", {"api": "port = 8765.5"}, "api.port", "integer"),
        ("", {"api": "port = true"}, "api.port", "integer"),
        ("", {"etcd": 'embedded = "yes"'}, "etcd.embedded", "true or false"),
        ("", {"etcd": 'timeout = "5"'}, "etcd.timeout", "number"),
        ("", {"node": "presence_ttl = [10]"}, "node.presence_ttl", "integer"),
        ("namespace = 5", {}, "namespace", "string"),
    ],
)
def test_a_setting_of_the_wrong_type_is_named_with_its_type(
    home: Path, top: str, tables: dict[str, str], setting: str, expected: str
) -> None:
    path = with_settings(home, top, **tables)
    assert_one_line_error(mao(home, "down"), setting, str(path), expected)


@pytest.mark.parametrize(
    ("tables", "setting"),
    [
        ({"etcd": "timeout = 0"}, "etcd.timeout"),
        ({"etcd": "timeout = -1"}, "etcd.timeout"),
        ({"etcd": "timeout = nan"}, "etcd.timeout"),
        ({"etcd": "timeout = inf"}, "etcd.timeout"),
        ({"node": "presence_ttl = 0"}, "node.presence_ttl"),
        ({"node": "presence_ttl = -1"}, "node.presence_ttl"),
        ({"api": "port = 0"}, "api.port"),
        ({"api": "port = 70000"}, "api.port"),
        ({"etcd": "client_port = -1"}, "etcd.client_port"),
        ({"etcd": "peer_port = 65536"}, "etcd.peer_port"),
    ],
)
def test_a_value_out_of_range_is_refused(home: Path, tables: dict[str, str], setting: str) -> None:
    path = with_settings(home, **tables)
    assert_one_line_error(mao(home, "down"), setting, str(path), " from ")


@pytest.mark.parametrize(
    ("env", "value", "setting"),
    [
        ("MAO_ETCD_TIMEOUT", "0", "etcd.timeout"),
        ("MAO_ETCD_TIMEOUT", "-1", "etcd.timeout"),
        ("MAO_ETCD_TIMEOUT", "nan", "etcd.timeout"),
        ("MAO_ETCD_TIMEOUT", "soon", "etcd.timeout"),
        ("MAO_PRESENCE_TTL", "0", "node.presence_ttl"),
        ("MAO_API_PORT", "x", "api.port"),
        ("MAO_EMBEDDED", "maybe", "etcd.embedded"),
    ],
)
def test_a_bad_env_value_names_the_variable(home: Path, env: str, value: str, setting: str) -> None:
    assert_one_line_error(mao(home, "down", **{env: value}), setting, env)


@pytest.mark.parametrize(
    "flag",
    [("--presence-ttl", "0"), ("--presence-ttl", "-1"), ("--client-port", "0"), ("--peer-port", "70000")],
)
def test_init_refuses_out_of_range_numbers_as_usage(tmp_path: Path, flag: tuple[str, str]) -> None:
    result = mao(tmp_path / "h", "init", "--operator", "alice", "--embedded", *flag)
    assert result.returncode == 2, result.stderr
    assert flag[0] in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "h" / "config.toml").exists()


def test_good_values_from_env_and_file_still_load(home: Path) -> None:
    with_settings(home, etcd="timeout = 2\nembedded = false", node="presence_ttl = 5", api="port = 9000")
    result = mao(home, "down", MAO_ETCD_TIMEOUT="0.5", MAO_EMBEDDED="no", MAO_API_PORT="9001")
    assert result.returncode == 0, result.stderr


def test_an_unreadable_password_file_is_named(home: Path) -> None:
    with_settings(home, etcd='user = "alice"')
    (home / "etcd.password").mkdir(mode=0o700)
    result = mao(home, "members")
    assert_one_line_error(result, str(home / "etcd.password"))


# -- each setting declared once ----------------------------------------------------------------


def test_each_config_attribute_is_filled_by_exactly_one_setting() -> None:
    import dataclasses

    from maomao.config import SETTINGS, Config

    fields = {f.name: f for f in dataclasses.fields(Config)}
    assert sorted(s.attr for s in SETTINGS) == sorted(set(fields) - {"home"})
    for setting in SETTINGS:
        if setting.name != "operator":  # required: no default
            assert fields[setting.attr].default == setting.default, setting.name


def test_every_setting_goes_to_the_file_and_back(tmp_path: Path) -> None:
    """to_file and load are derived from the settings: a value of each survives a save."""
    from maomao import config

    written = config.Config(
        home=tmp_path, operator="bob", endpoints=("http://127.0.0.1:9",), etcd_user="u",
        git_remote="file:///srv/{hub}/{dataset}", git_ssh_key="/k", presence_ttl=7, api_port=9000,
        api_publish_roots=("/a", "/b"), stop_grace=3.5, import_dir_setting="/imp", etcd_timeout=2.0,
        client_port=1234, peer_port=1235, namespace="/fed",
    )  # fmt: skip
    config.save(written)
    assert config.load(tmp_path) == written
    assert config.load(tmp_path, {"node.presence_ttl": "9"}).presence_ttl == 9


def test_init_options_take_their_defaults_and_ranges_from_the_settings() -> None:
    import click

    from maomao.cli.setup import init
    from maomao.config import SETTINGS_BY_NAME

    options = {p.name: p for p in init.params}
    assert options["namespace"].default == SETTINGS_BY_NAME["namespace"].default
    for option, name in (("presence_ttl", "node.presence_ttl"), ("client_port", "etcd.client_port")):
        kind = options[option].type
        assert isinstance(kind, click.IntRange)
        assert (kind.min, kind.max) == (SETTINGS_BY_NAME[name].low, SETTINGS_BY_NAME[name].high)
        assert f"default {SETTINGS_BY_NAME[name].default}" in (options[option].help or "")
