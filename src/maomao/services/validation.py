"""Audits and votes: deciding, together, which snapshots of a day are valid.

`mao audit HUB DATE [--dataset NAME] [--key COL,…]`, under the etcd lock
``{ns}/locks/audits/{hub}/{date}/`` (its lease kept alive, TTL ``node.presence_ttl``):

1. every operator's advertised snapshot of the day (of the one dataset) is retrieved by its
   advertised commit and verified (:func:`maomao.services.datasets.retrieve`); one that
   cannot be retrieved or verified ranks last, with its problem;
2. each is scored against the others (:mod:`maomao.analysis.audit`: rows no other snapshot
   has, rows it lacks; keyed by ``--key`` or as multisets, never by row position) and ranked;
3. the first is tagged ``ground-truth/{hub}/{date}/{dataset}`` in the auditor's dataset
   repository (``HOME/datasets/{hub}/{dataset}``);
4. the decision, the method and every score go to ``{ns}/audits/{hub}/{date}/{dataset}``
   with an ``audit`` event, in one transaction that holds only while the lock's key does.

So an auditor killed mid-way leaves nothing in etcd: its lock's lease expires within the
TTL, and the next auditor (waiting on the lock) does the whole audit again. Tests stop an
audit in the middle with ``MAO_TEST_AUDIT_HOLD=FILE`` (tests only): once the lock is held,
the audit writes FILE and waits while it exists.

`mao vote HUB DATE OPERATOR --valid|--invalid` writes the voter's vote under its own prefix
(``{ns}/ops/{voter}/votes/{hub}/{date}/{op}``) and a ballot pointer
(``{ns}/audits/{hub}/ballots/{date}/{op}/{voter}``) in one transaction. The elected tallier
(:mod:`maomao.daemon.validator`) counts the votes of the live members (presence): when more
than half of them voted one way, the snapshot is ``validated`` or ``rejected``
(``{ns}/audits/{hub}/verdicts/{date}/{op}`` and a ``verdict`` event); with no such majority
there is no verdict. A vote changed later is counted again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from maomao.clock import now_iso
from maomao.config import Config
from maomao.errors import AlreadyExists, InvalidValue, LeaseLost, MaoError, NotFound, Unavailable, UsageError
from maomao.etcd import Compare, Get, Put, Store
from maomao.gitstore.groundtruth import ground_truth_tag, tag_ground_truth
from maomao.gitstore.refs import validate_commit
from maomao.keys import validate_date, validate_name
from maomao.models import Audit, AuditScore, IndexEntry, Listing, Verdict, Vote
from maomao.services import advertising
from maomao.services.ids import new_id
from maomao.services.store import using_store

log = logging.getLogger(__name__)

#: Set by tests only: once the audit holds its lock it writes this file and waits while it exists.
HOLD_ENV = "MAO_TEST_AUDIT_HOLD"
#: Seconds an audit waits for another member's audit of the same day to end (or its lease to expire).
LOCK_WAIT = 300.0
#: Retention of ``audit`` and ``verdict`` events (seconds), as for ``snapshot`` events.
EVENT_RETENTION = advertising.EVENT_RETENTION
VERDICTS = ("validated", "rejected")


# -- audit ---------------------------------------------------------------------------------
async def audit(
    config: Config,
    hub: str,
    date: str,
    *,
    dataset: str | None = None,
    key: Sequence[str] = (),
    store: Store | None = None,
) -> Audit:
    """Audit the day's snapshots of *hub* (see the module docstring).

    :raises NotFound: no snapshot of that day (and dataset).
    :raises UsageError: the day has several datasets and none was named.
    :raises LockTimeout: another audit of the day held the lock for :data:`LOCK_WAIT` seconds.
    :raises LeaseLost: the lock's lease was lost before the decision was written.
    """
    validate_name(hub, "hub")
    validate_date(date)
    if dataset is not None:
        validate_name(dataset, "dataset")
    columns = [c.strip() for c in key]
    if any(not c for c in columns) or len(set(columns)) != len(columns):
        raise InvalidValue(f"--key {','.join(key)!r}: want distinct, non-empty column names")
    keys = config.keys
    async with using_store(config, store) as s:
        lock = s.lock(
            keys.lock(f"audits/{hub}/{date}"),
            ttl=config.presence_ttl,
            timeout=LOCK_WAIT,
            value=config.operator,
        )
        async with lock:
            await _hold_for_tests()
            entries = await _snapshots(s, config, hub, date, dataset)
            chosen = entries[0].dataset
            trees, problems = await _retrieve_all(config, s, entries)
            scores = await asyncio.to_thread(_scores, entries, trees, problems, columns)
            winner = next(e for e in entries if e.operator == scores[0].operator)
            if scores[0].problem:
                raise InvalidValue(
                    f"no snapshot of {hub}/{date}/{chosen} could be retrieved and verified: {scores[0].problem}"
                )
            record = Audit(
                id=new_id(), hub=hub, date=date, dataset=chosen, auditor=config.operator,
                method="keyed" if columns else "multiset", key=columns, decision=winner.operator,
                commit=winner.commit, scores=scores, decided_at=now_iso(),
            )  # fmt: skip
            record = await _tag(config, s, record)
            if lock.lost.is_set() or lock.key is None:
                raise LeaseLost(0, f"lock of the audit of {hub}/{date}")
            lease = await s.grant(EVENT_RETENTION)
            event = json.dumps({"key": keys.audit_decision(hub, date, chosen), **record.to_dict()})
            written = await s.txn(
                [Compare(lock.key, "create", 0, ">")],
                [
                    Put(keys.audit_decision(hub, date, chosen), record.to_json()),
                    Put(keys.event("audit", record.id), event, lease),
                ],
            )
            if not written.succeeded:
                raise LeaseLost(lock.lease.id if lock.lease else 0, f"lock of the audit of {hub}/{date}")
    return record


async def _hold_for_tests() -> None:
    hold = os.environ.get(HOLD_ENV)
    if not hold:
        return
    path = Path(hold)
    await asyncio.to_thread(path.write_text, str(os.getpid()))
    # the test removes the file from another process: nothing here could set an Event
    while await asyncio.to_thread(path.exists):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _snapshots(
    store: Store, config: Config, hub: str, date: str, dataset: str | None
) -> list[IndexEntry]:
    found = await advertising.list_entries(store, config.keys, hub=hub, date=date)
    for warning in found.warnings:
        log.warning("audit: %s", warning)
    entries = [e for e in found.items if dataset is None or e.dataset == dataset]
    if not entries:
        what = f"{hub}/{date}" + (f"/{dataset}" if dataset else "")
        raise NotFound("snapshot", f"no snapshot of {what} to audit")
    names = sorted({e.dataset for e in entries})
    if len(names) > 1:
        raise UsageError(f"{hub}/{date} has several datasets: {', '.join(names)} (give --dataset)")
    return sorted(entries, key=lambda e: e.operator)


async def _retrieve_all(
    config: Config, store: Store, entries: list[IndexEntry]
) -> tuple[dict[str, Path], dict[str, str]]:
    """Each snapshot retrieved and verified (operator → tree), or why not (operator → problem)."""
    from maomao.services.datasets import retrieve

    trees: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for entry in entries:
        try:
            try:
                got = await retrieve(
                    config, entry.hub, entry.date, entry.operator, entry.dataset, store=store
                )
            except AlreadyExists:
                # the usual place holds another commit (retrieved before a later publish of
                # the day): this commit gets a place of its own in the home
                place = validate_commit(entry.commit)  # read from etcd: a path segment only if a sha
                dest = config.home / "audits" / entry.hub / entry.date / entry.operator / place
                got = await retrieve(
                    config, entry.hub, entry.date, entry.operator, entry.dataset, dest=dest, store=store
                )
        except Unavailable:
            raise  # etcd away: the audit cannot go on
        except MaoError as exc:  # the snapshot's remote is away, or it is not what was advertised
            problems[entry.operator] = str(exc)
            continue
        trees[entry.operator] = Path(got.path)
    return trees, problems


def _scores(
    entries: list[IndexEntry], trees: dict[str, Path], problems: dict[str, str], key: list[str]
) -> list[AuditScore]:
    from maomao.analysis.audit import rank, score_trees  # polars: only an audit pays for it

    scored = rank(score_trees(trees, key)) if trees else []
    by_operator = {e.operator: e for e in entries}
    result = [
        AuditScore(
            operator=s.name,
            dataset=by_operator[s.name].dataset,
            commit=by_operator[s.name].commit,
            rank=n,
            rows=s.rows,
            unique=s.unique,
            missing=s.missing,
            disputed=s.disputed,
        )
        for n, s in enumerate(scored, 1)
    ]
    for op in sorted(problems):
        entry = by_operator[op]
        result.append(
            AuditScore(
                operator=op,
                dataset=entry.dataset,
                commit=entry.commit,
                rank=len(result) + 1,
                problem=problems[op],
            )
        )
    return result


async def _tag(config: Config, store: Store, record: Audit) -> Audit:
    """The ``ground-truth`` tag of the winning commit in the auditor's dataset repository."""
    from maomao.services.datasets import ssh_key

    ad = await advertising.advertisement(
        store, config.keys, record.hub, record.date, record.decision, record.dataset
    )
    repo = config.paths.dataset_dir(record.hub, record.dataset)
    summary = {k: v for k, v in record.to_dict().items() if k != "scores"}
    ranks = [
        f"{s.rank}. {s.operator}: {s.unique} unique, {s.missing} missing, {s.rows} rows"
        for s in record.scores
    ]
    message = f"ground truth of {record.hub}/{record.date}/{record.dataset}\n\n" + "\n".join(
        [json.dumps(summary, sort_keys=True), "", *ranks]
    )
    base = ground_truth_tag(record.hub, record.date, record.dataset)
    name = await asyncio.to_thread(
        tag_ground_truth, repo, ad.url, ad.commit, base, message, ssh=ssh_key(config)
    )
    return Audit.from_dict({**record.to_dict(), "tag": name, "repository": str(repo)})


async def last_audit(
    config: Config, hub: str, date: str, dataset: str, *, store: Store | None = None
) -> Audit:
    """The decision recorded by the last audit of *dataset* on that day.

    :raises NotFound: none was recorded (or it does not read).
    """
    key = config.keys.audit_decision(hub, date, dataset)
    async with using_store(config, store) as s:
        kv = await s.get(key)
    if kv is None:
        raise NotFound("audit", f"no audit of {hub}/{date}/{dataset}")
    try:
        record = Audit.from_json(kv.value)
    except ValueError as exc:
        raise NotFound("audit", f"the audit at {key} does not read: {exc}") from None
    if (record.hub, record.date, record.dataset) != (hub, date, dataset):
        raise NotFound("audit", f"the audit at {key} names another snapshot")
    return record


# -- votes ---------------------------------------------------------------------------------
async def vote(
    config: Config,
    hub: str,
    date: str,
    operator: str,
    *,
    valid: bool,
    reason: str = "",
    store: Store | None = None,
) -> Vote:
    """Record this operator's vote on *operator*'s snapshot of the day (replacing its last).

    :raises NotFound: *operator* advertised no snapshot of *hub* that day.
    """
    validate_name(hub, "hub")
    validate_date(date)
    validate_name(operator, "operator")
    if len(reason) > 1000 or "\0" in reason:
        raise InvalidValue("--reason: at most 1,000 characters, no NUL")
    keys = config.keys
    record = Vote(
        voter=config.operator, hub=hub, date=date, operator=operator, valid=valid, reason=reason, at=now_iso()
    )
    async with using_store(config, store) as s:
        found = await advertising.list_entries(s, keys, hub=hub, date=date, operator=operator)
        if not found.items:
            raise NotFound("snapshot", f"no snapshot of {hub} on {date} by {operator} to vote on")
        own = keys.vote(config.operator, hub, date, operator)
        await s.txn(
            [], [Put(own, record.to_json()), Put(keys.ballot(hub, date, operator, config.operator), own)]
        )
    return record


async def live_members(config: Config, store: Store) -> list[str]:
    """The operators whose node runs now (their presence is held)."""
    from maomao.services.members import list_members

    found = await list_members(config, store)
    return sorted(m.operator for m in found.items if m.online)


async def tally(config: Config, store: Store, hub: str, date: str, operator: str) -> Verdict | None:
    """Count the live members' votes on *operator*'s snapshot; write the verdict (with a
    ``verdict`` event) when it changed, or remove it when no side has a majority any more.

    Votes are read from each voter's own prefix (a ballot is only a pointer), and a vote
    that disagrees with its key is not counted.
    """
    keys = config.keys
    live = await live_members(config, store)
    read = await store.txn([], [Get(keys.vote(m, hub, date, operator)) for m in live])
    valid = invalid = 0
    for member, kvs in zip(live, read.reads, strict=True):
        if not kvs:
            continue
        try:
            cast = Vote.from_json(kvs[0].value)
        except ValueError as exc:
            log.warning("tally: skipped the vote of %s: %s", member, exc)
            continue
        if (cast.voter, cast.hub, cast.date, cast.operator) != (member, hub, date, operator):
            log.warning("tally: skipped the vote of %s: it names another vote", member)
            continue
        valid, invalid = valid + cast.valid, invalid + (not cast.valid)
    majority = len(live) // 2 + 1
    decided = "validated" if valid >= majority else "rejected" if invalid >= majority else None
    key = keys.verdict(hub, date, operator)
    current = await store.get(key)
    if decided is None:
        if current is not None:
            await store.delete(key, expected_revision=current.mod_revision)
            log.info("tally: %s/%s by %s has no majority any more", hub, date, operator)
        return None
    verdict = Verdict(
        hub=hub, date=date, operator=operator, verdict=decided, valid=valid, invalid=invalid, live=live,
        tallied_by=config.operator, at=now_iso(),
    )  # fmt: skip
    if current is not None:
        try:
            before = Verdict.from_json(current.value)
            if (before.verdict, before.valid, before.invalid, before.live) == (decided, valid, invalid, live):
                return before
        except ValueError:
            pass
    lease = await store.grant(EVENT_RETENTION)
    await store.txn(
        [Compare(key, "mod", current.mod_revision if current else 0)],
        [Put(key, verdict.to_json()), Put(keys.event("verdict", new_id()), verdict.to_json(), lease)],
    )
    log.info(
        "tally: %s/%s by %s %s (%d valid, %d invalid of %d live)",
        hub,
        date,
        operator,
        decided,
        valid,
        invalid,
        len(live),
    )
    return verdict


async def ballot_targets(config: Config, store: Store) -> set[tuple[str, str, str]]:
    """Every (hub, date, operator) someone voted on: one range read per hub."""
    keys = config.keys
    hubs = await advertising.list_hubs(store, keys)
    targets: set[tuple[str, str, str]] = set()
    for hub in hubs.items:
        for kv in await store.range(keys.ballots(hub), keys_only=True):
            name = keys.parse_ballot(kv.key)
            if name is not None:
                targets.add((name.hub, name.date, name.operator))
    return targets


async def list_verdicts(
    config: Config, hub: str, date: str | None = None, *, store: Store | None = None
) -> Listing[Verdict]:
    """The verdicts of *hub* (of one *date*): one range read; one that does not read, or
    disagrees with its key, is skipped with a warning."""
    keys = config.keys
    async with using_store(config, store) as s:
        found = await s.range(keys.verdicts(hub, date))
    items, warnings = [], []
    for kv in found:
        names = keys.parse_verdict(kv.key)
        try:
            record = Verdict.from_json(kv.value)
            if (
                names is None
                or (record.hub, record.date, record.operator) != names
                or record.verdict not in VERDICTS
            ):
                raise ValueError("it disagrees with its key")
        except ValueError as exc:
            warnings.append(f"skipped {kv.key}: {exc}")
            continue
        items.append(record)
    return Listing(items=items, warnings=warnings)


async def verdicts(
    config: Config, store: Store, entries: Iterable[IndexEntry]
) -> dict[tuple[str, str, str], str]:
    """The verdict (``validated``/``rejected``) on each (hub, date, operator) of *entries*
    that has one: one range read per hub (narrowed to the date when there is only one)."""
    keys = config.keys
    wanted = {(e.hub, e.date, e.operator) for e in entries}
    found: dict[tuple[str, str, str], str] = {}
    for hub in sorted({h for h, _, _ in wanted}):
        days = {d for h, d, _ in wanted if h == hub}
        prefix = keys.verdicts(hub, next(iter(days)) if len(days) == 1 else None)
        for kv in await store.range(prefix):
            names = keys.parse_verdict(kv.key)
            if names is None or names not in wanted:
                continue
            try:
                record = Verdict.from_json(kv.value)
            except ValueError:
                continue
            if (record.hub, record.date, record.operator) == names and record.verdict in VERDICTS:
                found[names] = record.verdict
    return found
