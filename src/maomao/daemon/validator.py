"""The elected tallier: on one node of the federation, count the votes as they change.

A supervised part of every node. It campaigns for ``{ns}/elections/validator/`` (the
lease kept alive, TTL ``node.presence_ttl``); while it leads, it tallies every snapshot
someone voted on (:func:`maomao.services.validation.tally`), then watches the audits
prefix from the next revision and tallies again each snapshot whose ballot changed (a new
or changed vote). When the leadership is lost it stops and campaigns again; the next
leader starts with a full tally, so no change is missed across leaders. A verdict is
counted among the members live at the time of the tally.

``python -m maomao.daemon.validator`` runs this part alone for the home of ``MAO_HOME``
(until SIGTERM), for a federation whose nodes do not run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from maomao.config import Config
from maomao.daemon.supervisor import Up
from maomao.etcd import Store

log = logging.getLogger(__name__)


class Validator:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.tallies = 0

    async def main(self, up: Up) -> None:
        """Campaign, tally while leading, campaign again when the leadership is lost."""
        from maomao.daemon.leading import while_leading

        await while_leading(
            self.config, self.store, "validator", self._lead, up, ttl=self.config.presence_ttl, what="validator"
        )

    async def _lead(self) -> None:
        from maomao.services.validation import ballot_targets

        keys = self.config.keys
        revision = await self.store.revision()
        for target in sorted(await ballot_targets(self.config, self.store)):
            await self._tally(*target)
        watch = self.store.watch(keys.audits_root, start_revision=revision + 1)
        async with contextlib.aclosing(aiter(watch)) as batches:
            async for batch in batches:
                targets: set[tuple[str, str, str]] = set()
                if batch.resync:  # history compacted away: count everything again
                    targets = await ballot_targets(self.config, self.store)
                for event in batch.events:
                    name = keys.parse_ballot(event.key)
                    if name is not None:
                        targets.add((name.hub, name.date, name.operator))
                for target in sorted(targets):
                    await self._tally(*target)

    async def _tally(self, hub: str, date: str, operator: str) -> None:
        from maomao.services.validation import tally

        await tally(self.config, self.store, hub, date, operator)
        self.tallies += 1


async def run_alone(config: Config, stop: asyncio.Event) -> None:
    """Run the tallier of *config*'s operator until *stop* is set (the part alone, restarted
    by a supervisor as in a node)."""
    from maomao.daemon.supervisor import Part, Supervisor
    from maomao.etcd import open_store

    async with open_store(config) as store:
        supervisor = Supervisor([Part("validator", Validator(config, store).main)])
        supervisor.start()
        try:
            await stop.wait()
        finally:
            await supervisor.stop()


def _main() -> None:
    from maomao import config as configuration
    from maomao.homedir import resolve_home

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = configuration.load(resolve_home(None))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_alone(config, stop)

    asyncio.run(main())


if __name__ == "__main__":
    _main()
