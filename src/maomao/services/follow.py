"""Follow hubs: subscriptions, and what handling a new snapshot (or spike) of one means.

A subscription is a record under the operator's prefix. The node's follower
(:mod:`maomao.daemon.follower`) watches the index and calls :func:`handle` for every new
snapshot a subscription matches. Handling starts with a claim, created only if absent, on
a key made of the subscription and a digest of the snapshot (hub, date, operator,
dataset, commit: one commit may be advertised for several dates): a duplicate
event, a restart of the node or a watch caught up after a compaction never handles a
snapshot twice. Then it notifies, and with a tool, retrieves and verifies the snapshot and
runs the tool with ``MAO_INPUT_DIR`` pointing at it. A notification that fails is logged
and never stops anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from maomao.clock import now_iso
from maomao.config import Config
from maomao.errors import InvalidValue, MaoError, NotFound
from maomao.etcd import Store
from maomao.keys import validate_name
from maomao.models import Handled, IndexEntry, Listing, Subscription
from maomao.services.ids import new_id
from maomao.services.store import using_store

log = logging.getLogger(__name__)

NOTIFY_KINDS = ("log", "webhook", "command")
#: A webhook's timeout and how often it is tried (with doubling pauses from the first).
WEBHOOK_TIMEOUT, WEBHOOK_ATTEMPTS, WEBHOOK_FIRST_PAUSE = 5.0, 3, 0.5
#: Seconds a notification command may run.
COMMAND_TIMEOUT = 30.0


async def add_subscription(
    config: Config,
    hub: str,
    *,
    of_operator: str | None = None,
    dataset: str | None = None,
    tool: str | None = None,
    command: str | None = None,
    publish: bool = True,
    notify: str = "log",
    url: str | None = None,
    argv: Sequence[str] = (),
    spikes: bool = False,
    store: Store | None = None,
) -> Subscription:
    """Store a subscription of this operator (checked first; the node picks it up by watch).

    :raises InvalidValue: a bad name, notify kind, URL or argv; a tool with ``spikes``.
    :raises NotFound: the tool is not registered.
    """
    validate_name(hub, "hub")
    for value, kind in ((of_operator, "operator"), (dataset, "dataset"), (tool, "tool"), (command, "command")):
        if value:
            validate_name(value, kind)
    if notify not in NOTIFY_KINDS:
        raise InvalidValue(f"--notify {notify!r}: expected one of {', '.join(NOTIFY_KINDS)}")
    if notify == "webhook" and not (url or "").startswith(("http://", "https://")):
        raise InvalidValue("a webhook needs an http:// or https:// URL")
    if notify == "command" and (not argv or any("\0" in a for a in argv)):
        raise InvalidValue("a command notification needs an argv (no NUL bytes)")
    if spikes and tool:
        raise InvalidValue("a subscription to spikes notifies; it runs no tool")
    record = Subscription(
        id=new_id(), operator=config.operator, hub=hub, of_operator=of_operator or "",
        dataset=dataset or "", tool=tool or "", command=command or "", publish=publish, notify=notify,
        url=url or "", argv=list(argv), spikes=spikes, created_at=now_iso(),
    )  # fmt: skip
    async with using_store(config, store) as s:
        if tool:
            from maomao.services.tools import get_tool

            await get_tool(config, tool, store=s)
        await s.put(config.keys.record(config.operator, "subscriptions", record.id), record.to_json())
    return record


async def list_subscriptions(config: Config, *, store: Store | None = None) -> Listing[Subscription]:
    """This operator's subscriptions; a record that does not read is skipped with a warning."""
    async with using_store(config, store) as s:
        found = await s.range(config.keys.records(config.operator, "subscriptions"))
    items, warnings = [], []
    for kv in found:
        try:
            items.append(subscription_of(kv.key, kv.value, config))
        except ValueError as exc:
            warnings.append(f"skipped {kv.key}: {exc}")
    return Listing(items=items, warnings=warnings)


def subscription_of(key: str, raw: bytes, config: Config) -> Subscription:
    """The subscription stored at *key* (untrusted: it must agree with its key).

    :raises ValueError: it does not read, or names another id or operator.
    """
    record = Subscription.from_json(raw)
    if key != config.keys.record(config.operator, "subscriptions", record.id) or record.operator != config.operator:
        raise ValueError("its id or operator disagrees with its key")
    return record


async def remove_subscription(config: Config, subscription_id: str, *, store: Store | None = None) -> Subscription:
    """Delete a subscription of this operator (what it handled is kept).

    :raises NotFound: no such subscription.
    """
    key = config.keys.record(config.operator, "subscriptions", subscription_id)
    async with using_store(config, store) as s:
        kv = await s.get(key)
        if kv is None:
            raise NotFound(f"subscription {subscription_id!r}", f"no subscription {subscription_id} of {config.operator}")
        await s.delete(key)
    return Subscription.from_json(kv.value)


def matches(subscription: Subscription, entry: IndexEntry) -> bool:
    return (
        not subscription.spikes
        and entry.hub == subscription.hub
        and (not subscription.of_operator or entry.operator == subscription.of_operator)
        and (not subscription.dataset or entry.dataset == subscription.dataset)
    )


def claim_of(*parts: str) -> str:
    """A name-rule key segment that stands for *parts* (a digest: they may be long)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


async def handle(config: Config, store: Store, subscription: Subscription, entry: IndexEntry) -> Handled | None:
    """Handle one new snapshot for *subscription*, once: ``None`` if it was handled before."""
    claim = claim_of(entry.hub, entry.date, entry.operator, entry.dataset, entry.commit)
    key = config.keys.handled(config.operator, subscription.id, claim)
    handled = Handled(subscription=subscription.id, key=entry.ref, commit=entry.commit, at=now_iso())
    if await store.create(key, handled.to_json()) is not None:
        return None  # claimed already: a duplicate event, or handled before a restart
    event = {"event": "snapshot", "subscription": subscription.id, **entry.to_dict()}
    await notify(subscription, event)
    if subscription.tool:
        handled = await _run_on(config, store, subscription, entry, handled)
    else:
        handled = msgspec.structs.replace(handled, status="done")
    await store.put(key, handled.to_json())
    return handled


async def handle_spike(config: Config, store: Store, subscription: Subscription, spike: dict[str, Any]) -> bool:
    """Notify one ``spike`` event of the subscription's hub, once."""
    if spike.get("hub") != subscription.hub or (
        subscription.of_operator and spike.get("operator") != subscription.of_operator
    ):
        return False
    parts = (str(spike.get("operator")), str(spike.get("dataset")), str(spike.get("date")), "spike")
    key = config.keys.handled(config.operator, subscription.id, claim_of(*parts))
    record = Handled(subscription=subscription.id, key=str(spike.get("date")), status="done", at=now_iso())
    if await store.create(key, record.to_json()) is not None:
        return False
    await notify(subscription, {"event": "spike", "subscription": subscription.id, **spike})
    return True


async def _run_on(
    config: Config, store: Store, subscription: Subscription, entry: IndexEntry, handled: Handled
) -> Handled:
    from maomao.services.datasets import retrieve
    from maomao.services.runs import RunRequest, run_tool

    try:
        got = await retrieve(config, entry.hub, entry.date, entry.operator, entry.dataset, store=store)
        request = RunRequest(
            tool=subscription.tool, command=subscription.command or None, input_dir=Path(got.path),
            publish=subscription.publish,
        )
        outcome = await run_tool(config, request, store=store)
    except MaoError as exc:
        log.warning("follow %s: %s on %s: %s", subscription.id, subscription.tool, entry.ref, exc)
        return msgspec.structs.replace(handled, status="failed", message=str(exc))
    status = "done" if outcome.ok else "failed"
    return msgspec.structs.replace(handled, status=status, run=outcome.record.id, message=outcome.record.status)


async def notify(subscription: Subscription, event: dict[str, Any]) -> None:
    """Tell the subscriber; a failure is logged, never raised."""
    try:
        if subscription.notify == "webhook":
            await asyncio.to_thread(_post, subscription.url, event)
        elif subscription.notify == "command":
            await _command(subscription.argv, event)
        else:
            log.info("follow %s: %s", subscription.id, json.dumps(event, sort_keys=True, default=str))
    except Exception as exc:  # a subscriber's failure must not stop the node
        log.warning("follow %s: notification failed: %s", subscription.id, exc)


def _post(url: str, event: dict[str, Any]) -> None:
    body = json.dumps(event, default=str).encode()
    pause = WEBHOOK_FIRST_PAUSE
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
                if response.status < 300:
                    return
                problem = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = str(exc)
        if attempt == WEBHOOK_ATTEMPTS:
            raise OSError(f"webhook {url}: {problem} after {attempt} attempts")
        time.sleep(pause * random.uniform(0.8, 1.2))
        pause *= 2


async def _command(argv: Sequence[str], event: dict[str, Any]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await asyncio.wait_for(proc.communicate(json.dumps(event, default=str).encode()), COMMAND_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise OSError(f"{argv[0]} did not end within {COMMAND_TIMEOUT:g} s") from None
    if proc.returncode:
        raise OSError(f"{argv[0]} exited with {proc.returncode}")
