"""Advertise what publishes queued while etcd was unreachable, as soon as it is back."""

from __future__ import annotations

import asyncio
import logging

from maomao.config import Config
from maomao.daemon.supervisor import Up
from maomao.errors import MaoError
from maomao.etcd import Store

log = logging.getLogger(__name__)

#: Seconds between two looks at the outbox.
OUTBOX_INTERVAL = 2.0


async def flush_outbox_forever(
    config: Config, store: Store, up: Up, interval: float = OUTBOX_INTERVAL
) -> None:
    """The supervised part: look at the outbox every *interval* seconds until cancelled."""
    from maomao.services.advertising import outbox_entries
    from maomao.services.publish import flush

    up()
    while True:
        if await asyncio.to_thread(outbox_entries, config):
            try:
                for ad in await flush(config, store=store):
                    log.info("advertised queued snapshot %s/%s/%s", ad.hub, ad.date, ad.dataset)
            except MaoError as exc:
                log.warning("outbox not flushed yet: %s", exc)
        await asyncio.sleep(interval)
