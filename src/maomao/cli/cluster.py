"""`mao cluster …`: the federation's etcd cluster. Membership and upkeep (init, join, leave,
members, status, maintain) live in :mod:`maomao.cli.cluster_members`; who may write what
(auth enable, grant, revoke, tls init) in :mod:`maomao.cli.cluster_access`."""

from __future__ import annotations

import click

from maomao.cli.app import CONTEXT


@click.group("cluster", context_settings=CONTEXT)
def cluster_group() -> None:
    """The federation's etcd cluster: membership, upkeep and confinement."""


def _attach() -> None:
    from maomao.cli import cluster_access, cluster_members

    for module in (cluster_members, cluster_access):
        for command in module.COMMANDS:
            cluster_group.add_command(command)


_attach()
