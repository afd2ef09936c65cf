"""`mao api token [--rotate]`: the bearer token of this home's node API."""

from __future__ import annotations

import click

from maomao.cli.app import CONTEXT, load_config
from maomao.cli.output import emit


@click.group("api", context_settings=CONTEXT)
def api_group() -> None:
    """The node's HTTP API."""


@api_group.command("token")
@click.option("--rotate", is_flag=True, help="Make a new token; the old one stops working at once.")
def token(rotate: bool) -> None:
    """Print the bearer token that state-changing API requests need (HOME/api.token, 0600).

    Send it as `Authorization: Bearer TOKEN`. The running node reads the file on each
    request, so a rotated token takes effect without a restart.
    """
    from maomao.services.apitoken import rotate as new_token
    from maomao.services.apitoken import token as current_token

    config = load_config()
    value = new_token(config) if rotate else current_token(config)
    emit({"token": value, "file": str(config.paths.api_token_file), "rotated": rotate}, value)
