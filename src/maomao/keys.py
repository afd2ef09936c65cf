"""Every etcd key maomao reads or writes, built in one place.

Each name segment is validated before it is joined, so no user input can address a key
outside its place: no ``/``, no ``..``, no spaces, nothing longer than 63 characters.
The layout (DESIGN.md):

    {ns}/ops/{op}/profile                           public profile
    {ns}/ops/{op}/presence                          bound to the node's lease
    {ns}/ops/{op}/snapshots/{hub}/{date}/{dataset}  advertisement
    {ns}/ops/{op}/tools/{tool}                      tool record
    {ns}/ops/{op}/{runs,schedules,pipelines,subscriptions}/{id}
    {ns}/ops/{op}/fires/{schedule}/{slot}           a schedule's slot, claimed once
    {ns}/index/schedules/{op}/{id}                  -> a federation schedule (copy of the record)
    {ns}/ops/{op}/handled/{subscription}/{claim}    a snapshot a subscription handled, once
    {ns}/ops/{op}/follow/{index,spikes}             the revision the follower got to
    {ns}/federation/fires/{op}/{schedule}/{slot}    a federation schedule's slot, claimed once
    {ns}/index/snapshots/{hub}/{date}/{op}/{dataset} -> advertisement key
    {ns}/index/hubs/{hub}                           -> marker: some snapshot exists for hub
    {ns}/index/dates/{hub}/{date}                   -> marker: some snapshot exists that date
    {ns}/index/tools/{tool}                         -> owner claim (create-if-absent)
    {ns}/index/operators/{op}                       -> known operator (written at first start)
    {ns}/index/presence/{op}                        -> online operator (same lease as presence)
    {ns}/events/{kind}/{id}                         events, with a lease
    {ns}/locks/{name}/, {ns}/elections/{name}/      coordination
    {ns}/audits/{hub}/{date}/{dataset}              an audit's decision and scores
    {ns}/audits/{hub}/ballots/{date}/{op}/{voter}   -> a vote's key (for the tallier)
    {ns}/audits/{hub}/verdicts/{date}/{op}          validated or rejected, by the tallier
    {ns}/ops/{voter}/votes/{hub}/{date}/{op}        a voter's vote on op's snapshot

No I/O happens here.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from maomao.errors import InvalidName, InvalidValue

NAME_RULE = "[a-z0-9][a-z0-9-]{0,62}"
_NAME_RE = re.compile(rf"{NAME_RULE}")

#: A segment of a user-given key path (``mao watch``, ``mao etcd dump``): looser than a
#: name (keys written by other tools may use capitals, dots or underscores) but never a
#: separator, never ``.`` or ``..``.
SEGMENT_RULE = "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
_SEGMENT_RE = re.compile(rf"{SEGMENT_RULE}")

NAMESPACE_RULE = f"/{SEGMENT_RULE}(/{SEGMENT_RULE})*"
DATE_RULE = "YYYY-MM-DD"

KINDS_OF_RECORD = ("runs", "schedules", "pipelines", "subscriptions", "votes")
#: A schedule's slot in a key: the scheduled time in whole seconds since the epoch, written
#: with 12 digits so that the keys of a schedule's slots sort in time order.
SLOT_RULE = "[0-9]{1,12}"
_SLOT_RE = re.compile(SLOT_RULE)


@functools.lru_cache(maxsize=65536)
def _follows_name_rule(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None


@functools.lru_cache(maxsize=4096)
def _date_problem(date: str) -> str:
    """Why *date* is not a snapshot date ("" when it is one)."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date):
        return f"must be {DATE_RULE}"
    try:
        dt.date.fromisoformat(date)
    except ValueError as exc:
        return str(exc)
    return ""


# Listings check every segment of every key they read (thousands per call, mostly the
# same few hubs, dates and operators): the verdicts on strings are cached.
def _slot_segment(slot: int) -> str:
    text = str(slot)
    if not _SLOT_RE.fullmatch(text):
        raise InvalidName("slot", text, SLOT_RULE)
    return text.zfill(12)


def validate_name(name: str, kind: str = "name") -> str:
    """Return *name* if it follows the naming rule, else raise :class:`InvalidName`."""
    if not isinstance(name, str) or not _follows_name_rule(name):
        raise InvalidName(kind, str(name), NAME_RULE)
    return name


def validate_segment(segment: str, kind: str = "key segment") -> str:
    if not _SEGMENT_RE.fullmatch(segment) or set(segment) == {"."}:
        raise InvalidName(kind, segment, SEGMENT_RULE)
    return segment


def validate_namespace(namespace: str) -> str:
    """A namespace is an absolute key path such as ``/maomao``; returned without a trailing slash."""
    if not namespace.startswith("/"):
        raise InvalidName("namespace", namespace, NAMESPACE_RULE)
    parts = namespace.rstrip("/").split("/")[1:]
    if not parts:
        raise InvalidName("namespace", namespace, NAMESPACE_RULE)
    for part in parts:
        if not _SEGMENT_RE.fullmatch(part) or set(part) == {"."}:
            raise InvalidName("namespace", namespace, NAMESPACE_RULE)
    return "/" + "/".join(parts)


def validate_date(date: str) -> str:
    """A snapshot date: ``YYYY-MM-DD`` and a real calendar day."""
    problem = _date_problem(date) if isinstance(date, str) else f"must be {DATE_RULE}"
    if problem:
        raise InvalidValue(f"invalid date {date!r}: {problem}")
    return date


class SnapshotName(NamedTuple):
    """The four names that place a snapshot, as parsed (and validated) from a key."""

    hub: str
    date: str
    operator: str
    dataset: str


_DATE_SHAPE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_INDEX_TAIL_RE = re.compile(rf"({NAME_RULE})/({_DATE_SHAPE})/({NAME_RULE})/({NAME_RULE})")
_SNAPSHOT_TAIL_RE = re.compile(rf"({NAME_RULE})/snapshots/({NAME_RULE})/({_DATE_SHAPE})/({NAME_RULE})")
_BALLOT_TAIL_RE = re.compile(rf"({NAME_RULE})/ballots/({_DATE_SHAPE})/({NAME_RULE})/({NAME_RULE})")
_VERDICT_TAIL_RE = re.compile(rf"({NAME_RULE})/verdicts/({_DATE_SHAPE})/({NAME_RULE})")


class BallotName(NamedTuple):
    """The names in a ballot key: whose snapshot (hub, date, operator) and who voted."""

    hub: str
    date: str
    operator: str
    voter: str


@dataclass(frozen=True)
class Keys:
    """Key builder bound to one federation namespace."""

    namespace: str = "/maomao"

    def __post_init__(self) -> None:
        object.__setattr__(self, "namespace", validate_namespace(self.namespace))

    # -- generic -----------------------------------------------------------------------
    @functools.cached_property
    def root(self) -> str:
        """The namespace prefix itself, with its trailing slash."""
        return f"{self.namespace}/"

    def under(self, path: str = "") -> str:
        """Key prefix for a user-given path relative to the namespace (``ops/alice``).

        An absolute path inside the namespace is accepted too. The result always ends
        with ``/`` unless it names the namespace root, so ``ops/al`` never matches
        ``ops/alice``.
        """
        path = path.strip()
        if path.startswith(self.root):
            path = path[len(self.root) :]
        elif path == self.namespace:
            path = ""
        elif path.startswith("/"):
            raise InvalidValue(f"prefix {path!r} is outside the namespace {self.namespace}")
        parts = [p for p in path.split("/") if p != ""]
        for part in parts:
            validate_segment(part)
        return self.root + "".join(f"{p}/" for p in parts)

    def relative(self, key: str) -> str:
        """The part of *key* after the namespace root."""
        return key[len(self.root) :] if key.startswith(self.root) else key

    # -- per operator ------------------------------------------------------------------
    def operator(self, op: str) -> str:
        return f"{self.root}ops/{validate_name(op, 'operator')}/"

    def profile(self, op: str) -> str:
        return f"{self.operator(op)}profile"

    def presence(self, op: str) -> str:
        return f"{self.operator(op)}presence"

    def snapshot(self, op: str, hub: str, date: str, dataset: str) -> str:
        return (
            f"{self.operator(op)}snapshots/{validate_name(hub, 'hub')}/"
            f"{validate_date(date)}/{validate_name(dataset, 'dataset')}"
        )

    @functools.cached_property
    def operators_root(self) -> str:
        return f"{self.root}ops/"

    @functools.cached_property
    def index_snapshots_root(self) -> str:
        return f"{self.root}index/snapshots/"

    def snapshot_of(self, name: SnapshotName) -> str:
        """The advertisement key of a parsed :class:`SnapshotName` (already validated)."""
        return f"{self.operators_root}{name.operator}/snapshots/{name.hub}/{name.date}/{name.dataset}"

    def describes_index_entry(self, key: str, ref: str, hub: str, date: str, op: str, dataset: str) -> bool:
        """Whether an index entry read at *key*, pointing at *ref* and naming these four
        names, is exactly the one those names place: valid names, its own key, and the
        key of their advertisement. (The listing's fast path: two string builds and cached
        verdicts instead of parsing the key.)"""
        return (
            key == f"{self.index_snapshots_root}{hub}/{date}/{op}/{dataset}"
            and ref == f"{self.operators_root}{op}/snapshots/{hub}/{date}/{dataset}"
            and _follows_name_rule(hub)
            and _follows_name_rule(op)
            and _follows_name_rule(dataset)
            and not _date_problem(date)
        )

    def parse_snapshot(self, key: str) -> SnapshotName | None:
        """The names in an advertisement key (``{ns}/ops/{op}/snapshots/{hub}/{date}/{dataset}``),
        or None when it is not one with valid names (a key read from etcd is untrusted)."""
        prefix = self.operators_root
        match = _SNAPSHOT_TAIL_RE.fullmatch(key, len(prefix)) if key.startswith(prefix) else None
        if match is None or _date_problem(match[3]):
            return None
        return SnapshotName._make(match.group(2, 3, 1, 4))

    def parse_index_snapshot(self, key: str) -> SnapshotName | None:
        """The names in a snapshot index key (``{ns}/index/snapshots/{hub}/{date}/{op}/{dataset}``),
        or None when it is not one with valid names."""
        prefix = self.index_snapshots_root
        match = _INDEX_TAIL_RE.fullmatch(key, len(prefix)) if key.startswith(prefix) else None
        if match is None or _date_problem(match[2]):
            return None
        return SnapshotName._make(match.groups())

    def tool(self, op: str, tool: str) -> str:
        return f"{self.operator(op)}tools/{validate_name(tool, 'tool')}"

    def record(self, op: str, kind: str, record_id: str) -> str:
        """Runs, schedules, pipelines, subscriptions, votes: ``{ns}/ops/{op}/{kind}/{id}``."""
        if kind not in KINDS_OF_RECORD:
            raise InvalidValue(f"unknown record kind {kind!r}")
        return f"{self.operator(op)}{kind}/{validate_name(record_id, kind[:-1] + ' id')}"

    def fire(self, op: str, schedule_id: str, slot: int) -> str:
        """``{ns}/ops/{op}/fires/{schedule}/{slot}``: the claim of one slot of a schedule."""
        return f"{self.fires(op, schedule_id)}{_slot_segment(slot)}"

    def fires(self, op: str, schedule_id: str | None = None) -> str:
        """Prefix of one schedule's slot claims (of every schedule's, without an id)."""
        prefix = f"{self.operator(op)}fires/"
        return prefix if schedule_id is None else f"{prefix}{validate_name(schedule_id, 'schedule id')}/"

    def handled(self, op: str, subscription_id: str, claim: str) -> str:
        """``{ns}/ops/{op}/handled/{subscription}/{claim}``: what a subscription handled."""
        return (
            f"{self.operator(op)}handled/{validate_name(subscription_id, 'subscription id')}/"
            f"{validate_name(claim, 'claim')}"
        )

    def follow_position(self, op: str, stream: str) -> str:
        """``{ns}/ops/{op}/follow/{stream}``: the revision the node's follower has handled
        in *stream* (``index`` or ``spikes``)."""
        return f"{self.operator(op)}follow/{validate_name(stream, 'stream')}"

    def index_schedule(self, op: str, schedule_id: str) -> str:
        """``{ns}/index/schedules/{op}/{id}``: a federation schedule, for the leader to run."""
        return f"{self.index_schedules()}{validate_name(op, 'operator')}/{validate_name(schedule_id, 'schedule id')}"

    def index_schedules(self) -> str:
        return f"{self.root}index/schedules/"

    def federation_fire(self, op: str, schedule_id: str, slot: int) -> str:
        """``{ns}/federation/fires/{op}/{id}/{slot}``: a federation schedule's slot, claimed by
        whichever node leads (a shared prefix: the leader is not the schedule's owner)."""
        return f"{self.federation_fires(op, schedule_id)}{_slot_segment(slot)}"

    def federation_fires(self, op: str, schedule_id: str) -> str:
        return (
            f"{self.root}federation/fires/{validate_name(op, 'operator')}/"
            f"{validate_name(schedule_id, 'schedule id')}/"
        )

    def records(self, op: str, kind: str) -> str:
        if kind not in KINDS_OF_RECORD:
            raise InvalidValue(f"unknown record kind {kind!r}")
        return f"{self.operator(op)}{kind}/"

    # -- shared index ------------------------------------------------------------------
    def index_snapshot(self, hub: str, date: str, op: str, dataset: str) -> str:
        return (
            f"{self.root}index/snapshots/{validate_name(hub, 'hub')}/{validate_date(date)}/"
            f"{validate_name(op, 'operator')}/{validate_name(dataset, 'dataset')}"
        )

    def index_snapshots(self, hub: str | None = None, date: str | None = None, op: str | None = None) -> str:
        """Prefix of the snapshot index, narrowed as far as the given parts allow."""
        prefix = f"{self.root}index/snapshots/"
        if hub is None:
            return prefix
        prefix += f"{validate_name(hub, 'hub')}/"
        if date is None:
            return prefix
        prefix += f"{validate_date(date)}/"
        if op is None:
            return prefix
        return prefix + f"{validate_name(op, 'operator')}/"

    def index_hub(self, hub: str) -> str:
        return f"{self.root}index/hubs/{validate_name(hub, 'hub')}"

    @property
    def index_hubs(self) -> str:
        return f"{self.root}index/hubs/"

    def index_date(self, hub: str, date: str) -> str:
        return f"{self.root}index/dates/{validate_name(hub, 'hub')}/{validate_date(date)}"

    def index_dates(self, hub: str) -> str:
        return f"{self.root}index/dates/{validate_name(hub, 'hub')}/"

    def snapshots(self, op: str, hub: str | None = None, date: str | None = None) -> str:
        """Prefix of one operator's advertisements, narrowed by hub and date."""
        prefix = f"{self.operator(op)}snapshots/"
        if hub is None:
            return prefix
        prefix += f"{validate_name(hub, 'hub')}/"
        return prefix if date is None else prefix + f"{validate_date(date)}/"

    def index_tool(self, tool: str) -> str:
        return f"{self.root}index/tools/{validate_name(tool, 'tool')}"

    @property
    def index_tools(self) -> str:
        return f"{self.root}index/tools/"

    def index_operator(self, op: str) -> str:
        return f"{self.root}index/operators/{validate_name(op, 'operator')}"

    @property
    def index_operators(self) -> str:
        return f"{self.root}index/operators/"

    def index_presence(self, op: str) -> str:
        return f"{self.root}index/presence/{validate_name(op, 'operator')}"

    @property
    def index_presences(self) -> str:
        return f"{self.root}index/presence/"

    # -- events and coordination -------------------------------------------------------
    def event(self, kind: str, event_id: str) -> str:
        return f"{self.root}events/{validate_name(kind, 'event kind')}/{validate_name(event_id, 'event id')}"

    def events(self, kind: str | None = None) -> str:
        if kind is None:
            return f"{self.root}events/"
        return f"{self.root}events/{validate_name(kind, 'event kind')}/"

    def lock(self, name: str) -> str:
        return f"{self.root}locks/{self._path(name, 'lock')}/"

    def election(self, name: str) -> str:
        return f"{self.root}elections/{self._path(name, 'election')}/"

    def audit(self, hub: str, date: str) -> str:
        return f"{self.root}audits/{validate_name(hub, 'hub')}/{validate_date(date)}/"

    def audit_decision(self, hub: str, date: str, dataset: str) -> str:
        """``{ns}/audits/{hub}/{date}/{dataset}``: the last audit of that dataset's snapshots."""
        return f"{self.audit(hub, date)}{validate_name(dataset, 'dataset')}"

    @functools.cached_property
    def audits_root(self) -> str:
        return f"{self.root}audits/"

    def vote(self, voter: str, hub: str, date: str, op: str) -> str:
        """``{ns}/ops/{voter}/votes/{hub}/{date}/{op}``: *voter*'s vote on *op*'s snapshot."""
        return (
            f"{self.operator(voter)}votes/{validate_name(hub, 'hub')}/{validate_date(date)}/"
            f"{validate_name(op, 'operator')}"
        )

    def ballot(self, hub: str, date: str, op: str, voter: str) -> str:
        """``{ns}/audits/{hub}/ballots/{date}/{op}/{voter}``: a pointer to a vote, so that the
        tallier finds votes with one watch (it re-reads the vote from the voter's prefix).
        A date never spells ``ballots``, so these never meet an audit's keys."""
        return (
            f"{self.ballots(hub)}{validate_date(date)}/{validate_name(op, 'operator')}/"
            f"{validate_name(voter, 'operator')}"
        )

    def ballots(self, hub: str) -> str:
        return f"{self.audits_root}{validate_name(hub, 'hub')}/ballots/"

    def parse_ballot(self, key: str) -> BallotName | None:
        """The names in a ballot key, or None when it is not one with valid names."""
        prefix = self.audits_root
        match = _BALLOT_TAIL_RE.fullmatch(key, len(prefix)) if key.startswith(prefix) else None
        if match is None or _date_problem(match[2]):
            return None
        return BallotName._make(match.groups())

    def verdict(self, hub: str, date: str, op: str) -> str:
        """``{ns}/audits/{hub}/verdicts/{date}/{op}``: the tallied verdict on *op*'s snapshot."""
        return f"{self.verdicts(hub, date)}{validate_name(op, 'operator')}"

    def verdicts(self, hub: str, date: str | None = None) -> str:
        prefix = f"{self.audits_root}{validate_name(hub, 'hub')}/verdicts/"
        return prefix if date is None else f"{prefix}{validate_date(date)}/"

    def parse_verdict(self, key: str) -> tuple[str, str, str] | None:
        """(hub, date, operator) of a verdict key, or None when it is not one."""
        prefix = self.audits_root
        match = _VERDICT_TAIL_RE.fullmatch(key, len(prefix)) if key.startswith(prefix) else None
        if match is None or _date_problem(match[2]):
            return None
        return match[1], match[2], match[3]

    @staticmethod
    def _path(name: str, kind: str) -> str:
        """A ``/``-separated coordination name, every part a valid name (``tools/collector``)."""
        parts = name.split("/")
        for part in parts:
            validate_name(part, kind)
        return "/".join(parts)
