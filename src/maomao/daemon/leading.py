"""Work that one node of the federation does at a time: campaign, work while leading, and
campaign again when the leadership is lost (its lease expired)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from maomao.config import Config
from maomao.daemon.supervisor import Up
from maomao.etcd import Store

log = logging.getLogger(__name__)


async def while_leading(
    config: Config, store: Store, election_name: str, work: Callable[[], Coroutine[Any, Any, None]], up: Up,
    *, ttl: int, what: str,
) -> None:  # fmt: skip
    """The supervised part: win ``{ns}/elections/{election_name}/``, run *work* until it ends
    or the leadership is lost (then it is cancelled, the leadership resigned, and the
    campaign starts again). A failure of *work* ends the part, for the supervisor to restart."""
    election = store.election(config.keys.election(election_name), value=config.operator, ttl=ttl)
    up()
    while True:
        await election.campaign()
        log.info("%s: %s leads", what, config.operator)
        working = asyncio.create_task(work(), name=f"{election_name}-leader")
        lost = asyncio.create_task(election.lost.wait())
        try:
            await asyncio.wait({working, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await working
            with contextlib.suppress(Exception):
                await election.resign()
        if working.done() and not working.cancelled() and working.exception() is not None:
            raise working.exception()  # type: ignore[misc]
        log.warning("%s: leadership lost; campaigning again", what)
