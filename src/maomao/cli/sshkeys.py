"""`mao keys init | authorized-keys`: git keys for pushes, and access that follows membership."""

from __future__ import annotations

import click

from maomao.cli.app import CONTEXT, arun, load_config
from maomao.cli.output import emit, note, warn


@click.group("keys", context_settings=CONTEXT)
def keys_group() -> None:
    """ssh keys for the federation's git servers."""


@keys_group.command("init")
def keys_init() -> None:
    """Make your ed25519 git key (HOME/ssh/id_ed25519, 0600) and publish its public key.

    The public key goes in your profile, where `mao keys authorized-keys` finds it; the
    private key becomes git.ssh_key unless that is set already. Run again to publish the
    same key again.
    """
    from maomao.services.sshkeys import init_keys

    pair = arun(init_keys(load_config()))
    made = "made" if pair.created else "kept"
    emit(pair.to_dict(), f"{made} {pair.private_key}; published in {pair.profile_key}:\n{pair.public_key}")


@keys_group.command("authorized-keys")
@click.option(
    "--read-only",
    "read_only",
    metavar="OP,…",
    help="Operators who may fetch and clone but never push (comma-separated).",
)
@click.option(
    "--anonymous",
    is_flag=True,
    help="Add the read-only deployment account (key pair HOME/ssh/anonymous_ed25519, made if absent).",
)
def keys_authorized(read_only: str | None, anonymous: bool) -> None:
    """Print an authorized_keys file for a git server: live members push, the others fetch.

    Every line runs only git-shell, with no pty and no forwarding. Regenerate it when
    membership changes (a member that goes offline loses its line).
    """  # fmt: skip
    from maomao.services.sshkeys import authorized_keys

    readers = [op.strip() for op in (read_only or "").split(",") if op.strip()]
    rendered = arun(authorized_keys(load_config(), read_only=readers, anonymous=anonymous))
    warn(list(rendered.warnings))
    if rendered.anonymous_key:
        note(f"the anonymous account's private key is {rendered.anonymous_key}: hand it to deployments")
    emit(rendered.to_dict(), rendered.text.rstrip("\n") if rendered.text else None)
