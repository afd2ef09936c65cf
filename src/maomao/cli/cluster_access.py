"""`mao cluster auth enable | grant | revoke | tls init` (issue 16)."""

from __future__ import annotations

import click

#: The commands this module adds to `mao cluster`.
COMMANDS: list[click.Command] = []
