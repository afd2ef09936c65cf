"""`mao init`: write an operator's config (its own module: the settings it shows in its
options are read from :mod:`maomao.config`, which the other commands load only when used)."""

from __future__ import annotations

from pathlib import Path

import click

from maomao.cli.app import CONTEXT
from maomao.cli.interactive import ask
from maomao.cli.output import GLOBALS, emit
from maomao.config import SETTINGS_BY_NAME, check_home
from maomao.config import default as config_default
from maomao.errors import ConfigError, UsageError
from maomao.homedir import resolve_home


def setting_range(name: str) -> click.IntRange:
    """The values an integer setting allows, as a click type (the range declared in config)."""
    setting = SETTINGS_BY_NAME[name]
    return click.IntRange(int(setting.low), int(setting.high))



@click.command(context_settings=CONTEXT)
@click.option("--operator", help="Your operator name ([a-z0-9][a-z0-9-]{0,62}).")
@click.option("--embedded", is_flag=True, help="Run a single-member etcd with the node.")
@click.option("--etcd", metavar="URL[,URL…]", help="Join an existing etcd cluster.")
@click.option(
    "--namespace",
    default=config_default("namespace"),
    show_default=True,
    help="Key prefix of the federation.",
)
@click.option("--git-remote", metavar="URL", help="Default git remote for your datasets.")
@click.option(
    "--client-port",
    type=setting_range("etcd.client_port"),
    help=f"Embedded etcd client port (default {config_default('etcd.client_port')} or a free one).",
)
@click.option(
    "--peer-port",
    type=setting_range("etcd.peer_port"),
    help=f"Embedded etcd peer port (default {config_default('etcd.peer_port')} or a free one).",
)
@click.option(
    "--presence-ttl",
    type=setting_range("node.presence_ttl"),
    help=f"Presence lease TTL in seconds (default {config_default('node.presence_ttl')}).",
)
@click.option(
    "--api-port",
    type=setting_range("api.port"),
    help=f"Port of the node's HTTP API on 127.0.0.1 (default {config_default('api.port')} or a free one).",
)
@click.option("--etcd-user", metavar="NAME", help="Your etcd user in a confined federation (`mao cluster grant`).")
@click.option("--etcd-password-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The password of --etcd-user: copied into HOME/etcd.password (0600), never into the config.")
@click.option("--etcd-ca", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The CA of the cluster's certificates (TLS: https:// endpoints).")
@click.option("--etcd-cert", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Your client certificate (mutual TLS), with --etcd-key.")
@click.option("--etcd-key", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The private key of --etcd-cert (mode 0600).")
@click.option("--force", is_flag=True, help="Overwrite an existing config.")
def init(
    operator: str | None,
    embedded: bool,
    etcd: str | None,
    namespace: str,
    git_remote: str | None,
    client_port: int | None,
    peer_port: int | None,
    presence_ttl: int | None,
    api_port: int | None,
    etcd_user: str | None,
    etcd_password_file: Path | None,
    etcd_ca: Path | None,
    etcd_cert: Path | None,
    etcd_key: Path | None,
    force: bool,
) -> None:
    """Write this operator's config under MAO_HOME."""
    from maomao.services.home import init_home

    if operator is None:
        operator = ask("--operator", "Operator name")
    if not embedded and not etcd:
        if not GLOBALS.interactive:
            raise UsageError("give --embedded or --etcd URL[,URL…]")
        etcd = ask("--etcd", "etcd URL[,URL…] (empty: embedded etcd)") or None
        embedded = etcd is None
    home = resolve_home(GLOBALS.home)
    check_home(home)
    try:
        config = init_home(
            home,
            operator,
            embedded=embedded,
            etcd=etcd,
            namespace=namespace,
            git_remote=git_remote,
            client_port=client_port,
            peer_port=peer_port,
            presence_ttl=presence_ttl,
            api_port=api_port,
            etcd_user=etcd_user,
            etcd_password_file=etcd_password_file,
            etcd_ca=etcd_ca,
            etcd_cert=etcd_cert,
            etcd_key=etcd_key,
            force=force,
        )
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(home) else ""
        raise ConfigError(f"cannot write home {home}: {exc.strerror or exc}{where}") from None
    emit(
        config.to_dict(),
        f"initialised {config.operator} in {config.home}\n"
        f"  etcd: {', '.join(config.endpoints)}{' (embedded)' if config.embedded else ''}\n"
        f"next: mao up --detach",
    )


