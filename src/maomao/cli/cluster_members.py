"""`mao cluster init | join | leave | members | status | maintain` (issue 16)."""

from __future__ import annotations

import click

#: The commands this module adds to `mao cluster`.
COMMANDS: list[click.Command] = []
