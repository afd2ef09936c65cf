"""`mao cluster auth enable | grant | revoke | tls init` (issue 16): who may write what."""

from __future__ import annotations

from pathlib import Path

import click

from maomao.cli.app import CONTEXT, arun, load_config
from maomao.cli.output import emit, note


@click.group("auth", context_settings=CONTEXT)
def auth_group() -> None:
    """etcd authentication: users, roles and JWT tokens."""


@auth_group.command("enable")
@click.option(
    "--allow-simple-tokens", is_flag=True,
    help="Enable auth even if etcd issues simple tokens (they die with an etcd restart).",
)  # fmt: skip
def auth_enable(allow_simple_tokens: bool) -> None:
    """Create etcd's root user and yours, and turn auth on.

    Root's password is printed once and kept in HOME/etcd-root.password (0600); yours in
    HOME/etcd.password, with etcd.user set in the config. etcd must run with
    `--auth-token jwt,…` (see `mao cluster tls init`): otherwise auth is turned off again.
    """
    from maomao.services.access import enable_auth

    done = arun(enable_auth(load_config(), allow_simple_tokens=allow_simple_tokens))
    emit(
        done.to_dict(),
        f"auth enabled ({done.token} tokens)\n"
        f"root password (shown once, kept in {done.root_password_file}): {done.root_password}\n"
        f"etcd user {done.operator.user} for this home (password in {done.operator.password_file})",
    )


@click.command("grant")
@click.argument("operator")
@click.option(
    "--password-file", type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the password there (mode 0600), e.g. OPERATOR's HOME/etcd.password.",
)  # fmt: skip
def grant(operator: str, password_file: Path | None) -> None:
    """Create OPERATOR's etcd user: it may write only its own keys and the shared prefixes.

    The password is made here and printed once: hand it over out of band. The operator
    puts it in its HOME/etcd.password (0600) and sets etcd.user to its name.
    """
    from maomao.services.access import grant as grant_user

    done = arun(grant_user(load_config(), operator, password_file=password_file))
    emit(done.to_dict(), f"etcd user {done.user} (role {done.role})\npassword (shown once): {done.password}")
    note(
        f"hand the password to {done.user} out of band: it goes in its HOME/etcd.password "
        f'(chmod 600), with `etcd.user = "{done.user}"` under [etcd] in its config.toml'
    )


@click.command("revoke")
@click.argument("operator")
def revoke(operator: str) -> None:
    """Delete OPERATOR's etcd user and role: its next request to etcd is refused."""
    from maomao.services.access import revoke as revoke_user

    done = arun(revoke_user(load_config(), operator))
    emit(done.to_dict(), f"revoked {done.operator}")


@click.group("tls", context_settings=CONTEXT)
def tls_group() -> None:
    """Certificates for etcd's client and peer traffic."""


@tls_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="NAME|IP",
    help="Another name of the members, besides localhost and 127.0.0.1 (repeatable).",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="OPERATOR",
    help="Make a client certificate for OPERATOR (repeatable; default: one named client).",
)
@click.option("--days", type=int, default=365, show_default=True, help="Validity of every certificate.")
@click.option("--force", is_flag=True, help="Replace a CA already in DIRECTORY.")
def tls_init(
    directory: Path, hosts: tuple[str, ...], clients: tuple[str, ...], days: int, force: bool
) -> None:
    """Create a CA, member certificates and client certificates in DIRECTORY (with openssl).

    Start each etcd member with the printed flags; each operator sets etcd.ca to ca.pem,
    and for mutual TLS etcd.cert and etcd.key to its client-OP.pem and client-OP.key.
    """  # fmt: skip
    from maomao.services.tls import init_tls

    files = init_tls(directory, hosts=list(hosts), clients=list(clients), days=days, force=force)
    clients_text = "\n".join(
        f"  {op}: etcd.cert = {c}, etcd.key = {k}" for op, (c, k) in files.clients.items()
    )
    emit(
        files.to_dict(),
        f"CA and certificates in {files.directory}\netcd flags:\n  "
        + " \\\n  ".join(files.etcd_flags)
        + f"\nclients (etcd.ca = {files.ca}):\n{clients_text}",
    )


#: The commands this module adds to `mao cluster`.
COMMANDS: list[click.Command] = [auth_group, grant, revoke, tls_group]
