"""Frozen value objects that cross the layers, with ``to_dict``/``from_dict``."""

from __future__ import annotations

from typing import Any, Generic, Self, TypeVar

import msgspec

T = TypeVar("T")

_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the records that cross layers and etcd: frozen, typed, JSON in and out.

    msgspec checks the types of what it decodes (advertisements come from other operators)
    and decodes several times faster than json + dataclasses, which listings feel.
    Unknown fields are ignored, so newer writers do not break older readers.
    """

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        try:
            return msgspec.convert(data, cls)
        except msgspec.MsgspecError as exc:
            raise ValueError(f"invalid {cls.__name__}: {exc}") from None

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        decoder = _DECODERS.get(cls)
        if decoder is None:
            decoder = _DECODERS[cls] = msgspec.json.Decoder(cls)
        try:
            return decoder.decode(raw)  # type: ignore[no-any-return]
        except msgspec.MsgspecError as exc:
            raise ValueError(f"invalid {cls.__name__}: {exc}") from None


class Listing(Record, Generic[T], frozen=True, kw_only=True):
    """What a listing read from etcd found: the records it could use, and one line per
    record it skipped (another operator's malformed JSON, a wrong type, an entry that
    disagrees with its own key). A bad record never breaks a listing; it is reported."""

    items: list[T]
    warnings: list[str] = msgspec.field(default_factory=list)

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class Profile(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/profile``: what an operator tells the federation about itself."""

    operator: str
    contact: str = ""
    api_url: str = ""
    git_remote: str = ""
    ssh_public_key: str = ""
    joined_at: str = ""


class Presence(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/presence``: bound to the node's lease while it runs."""

    operator: str
    host: str
    pid: int
    started_at: str
    version: str
    api_url: str = ""
    embedded_etcd: str = ""


class MemberInfo(Record, frozen=True, kw_only=True):
    """One operator of the federation as `mao members` shows it."""

    operator: str
    online: bool
    host: str = ""
    pid: int = 0
    since: str = ""
    version: str = ""
    api_url: str = ""
    contact: str = ""


class TaskState(Record, frozen=True, kw_only=True):
    """One supervised task of the node (presence, outbox, api, …) as `mao status` shows it.

    *state* is ``starting``, ``up``, ``restarting`` (it died; *last_error* says why and it
    comes back after a backoff) or ``stopped``.
    """

    name: str
    state: str
    restarts: int = 0
    last_error: str = ""
    since: str = ""


class NodeStatus(Record, frozen=True, kw_only=True):
    """What `mao status` reports."""

    operator: str
    home: str
    namespace: str
    endpoints: list[str]
    etcd_healthy: bool
    node_running: bool
    node_pid: int = 0
    embedded: bool = False
    etcd_version: str = ""
    etcd_pid: int = 0
    revision: int = 0
    db_size: int = 0
    leader: str = ""
    cluster_members: list[dict[str, Any]] = msgspec.field(default_factory=list)
    health: dict[str, bool] = msgspec.field(default_factory=dict)
    api_url: str = ""
    tasks: list[TaskState] = msgspec.field(default_factory=list)
    error: str = ""


class FileEntry(Record, frozen=True, kw_only=True):
    """One file of a snapshot: its path in the tree, size, and CSV data rows (0 if not CSV)."""

    path: str
    bytes: int
    rows: int = 0


class Advertisement(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/snapshots/{hub}/{date}/{dataset}``: where and what a snapshot is.

    Written by its operator only after the push landed; never holds credentials.

    ``sequence`` is the commit's generation on the dataset's branch (``git rev-list
    --count --first-parent``): pushes never force, so a later landed commit always has a
    higher one, whichever tree or home published it. A lower sequence never replaces a
    higher one, whatever the clock said. Advertisements written before sequences existed
    (or from a shallow clone) have ``sequence`` 0.
    """

    operator: str
    hub: str
    date: str
    dataset: str
    url: str
    branch: str
    commit: str
    digest: str
    files: list[dict[str, Any]] = msgspec.field(default_factory=list)
    metric: float | None = None
    tool: str = ""
    run_id: str = ""
    published_at: str = ""
    tag: str = ""
    sequence: int = 0

    @property
    def rows(self) -> int:
        return sum(int(f.get("rows", 0)) for f in self.files)


class IndexEntry(Record, frozen=True, kw_only=True):
    """``{ns}/index/snapshots/{hub}/{date}/{op}/{dataset}``: pointer to an advertisement.

    Besides the key it points to (``ref``), it carries a summary so that a listing is one
    range read; anything used to fetch data is re-read from the advertisement itself,
    which only its operator can write.
    """

    ref: str
    operator: str
    hub: str
    date: str
    dataset: str
    commit: str
    published_at: str
    files: int = 0
    rows: int = 0
    metric: float | None = None

    @classmethod
    def of(cls, ref: str, ad: Advertisement) -> IndexEntry:
        return cls(
            ref=ref,
            operator=ad.operator,
            hub=ad.hub,
            date=ad.date,
            dataset=ad.dataset,
            commit=ad.commit,
            published_at=ad.published_at,
            files=len(ad.files),
            rows=ad.rows,
            metric=ad.metric,
        )


class PublishResult(Record, frozen=True, kw_only=True):
    """What `mao dataset publish` did: ``state`` is ``advertised`` or ``queued`` (etcd was
    unreachable after the push; the advertisement waits in the outbox)."""

    state: str
    advertisement: Advertisement
    key: str
    committed: bool
    pushed: bool
    outbox_file: str = ""
    revision: int = 0


class RetrieveResult(Record, frozen=True, kw_only=True):
    """What `mao dataset retrieve` did: ``state`` is ``retrieved`` or ``present``."""

    state: str
    path: str
    advertisement: Advertisement


class TreeCheck(Record, frozen=True, kw_only=True):
    """A working tree checked against an advertisement: ``problem`` is one line naming the
    first difference (``digest mismatch: …``, ``files mismatch: …``), empty when ``ok``;
    ``commit`` and ``digest`` are what the tree holds, as far as the check got."""

    ok: bool
    problem: str = ""
    commit: str | None = None
    digest: str | None = None


class VerifyResult(Record, frozen=True, kw_only=True):
    """What `mao dataset verify` found: the tree's check against its advertisement, read
    from ``source`` (``etcd``, or the local copy kept in ``.git`` when etcd is away)."""

    path: str
    key: str
    source: str
    expected_commit: str
    expected_digest: str
    ok: bool
    problem: str = ""
    commit: str | None = None
    digest: str | None = None


# -- the keyspace -----------------------------------------------------------------------------


class Dump(Record, frozen=True, kw_only=True):
    """`mao etcd dump`: the YAML of a subtree, its number of keys and the revision read at."""

    prefix: str
    yaml: str
    keys: int
    revision: int


class LoadResult(Record, frozen=True, kw_only=True):
    """`mao etcd load`: how many keys the one transaction wrote, deleted and left alone."""

    prefix: str
    replace: bool
    put: int
    deleted: int
    unchanged: int


# -- tools, runs and pipelines ---------------------------------------------------------------


class ToolClaim(Record, frozen=True, kw_only=True):
    """``{ns}/index/tools/{tool}``: who owns a tool name, created only if absent.

    Written in the same transaction as the owner's first :class:`ToolRecord`; ``key`` is
    that record's key (readers verify the record is there).
    """

    tool: str
    operator: str
    key: str
    claimed_at: str = ""


class ToolRecord(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/tools/{tool}``: a registered tool (a git repository with a maomao.toml).

    ``ref`` is the branch, tag or commit installed by default (empty: the remote's HEAD).
    ``repo`` never carries credentials.
    """

    name: str
    operator: str
    repo: str
    ref: str = ""
    image: str = ""
    description: str = ""
    created_at: str = ""
    updated_at: str = ""


class ToolInstall(Record, frozen=True, kw_only=True):
    """What `mao tool install` did, kept in the operator's home (never in etcd)."""

    tool: str
    owner: str
    repo: str
    ref: str
    commit: str
    path: str
    manifest_name: str
    commands: list[str] = msgspec.field(default_factory=list)
    image: str = ""
    installed_at: str = ""
    previous_commit: str = ""


class ToolEntry(Record, frozen=True):
    """A registered tool as read: its record, where it lives and its mod revision.

    :meth:`to_dict` flattens the record beside ``key`` and ``revision`` (the CLI's JSON)."""

    record: ToolRecord
    key: str
    revision: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "key": self.key, "revision": self.revision}


class ToolChange(Record, frozen=True):
    """What `mao tool add` did: ``action`` is ``created``, ``updated`` or ``unchanged``."""

    action: str
    entry: ToolEntry

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "tool": self.entry.to_dict()}


class RunRecord(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/runs/{id}``: one tool run, or one pipeline run (``kind``).

    Written when the run starts (``status`` ``waiting`` or ``running``) and again when it
    ends (``succeeded``, ``failed``, ``timed-out``, ``cancelled``, ``error``; readers show
    ``lost`` for a run whose process on this host is gone). ``args`` are the resolved
    argument values; ``env`` only the names of the variables given (never their values).
    A pipeline run lists its steps' run ids in ``steps``; a step names its ``pipeline``.
    """

    id: str
    operator: str
    kind: str = "tool"
    tool: str = ""
    command: str = ""
    args: dict[str, str] = msgspec.field(default_factory=dict)
    argv: list[str] = msgspec.field(default_factory=list)
    env: list[str] = msgspec.field(default_factory=list)
    runner: str = ""
    hub: str = ""
    dataset: str = ""
    data_dir: str = ""
    input_dir: str = ""
    tool_commit: str = ""
    status: str = "running"
    exit_code: int | None = None
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    duration: float = 0.0
    log: str = ""
    digest: str = ""
    files: int = 0
    rows: int = 0
    publish: str = "skipped"
    published_commit: str = ""
    publish_error: str = ""
    pipeline: str = ""
    step: str = ""
    steps: list[str] = msgspec.field(default_factory=list)
    host: str = ""
    pid: int = 0
    #: A run a schedule fired: the schedule's id, the slot (ISO time, UTC) and which attempt.
    schedule: str = ""
    slot: str = ""
    attempt: int = 0
    attempts: int = 0
    #: A run of another operator's pipeline: whose it was, ``"op/name@revision"``.
    origin: str = ""

    @property
    def finished(self) -> bool:
        return self.status not in ("waiting", "running")


class RunLog(Record, frozen=True):
    """The log of one run (a pipeline run: its steps' logs in order); ``files`` are the
    log files read, ``text`` their content. :meth:`to_dict` names the run ``id``."""

    run_id: str
    files: list[str]
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.run_id, "files": self.files, "text": self.text}


class SecretRef(Record, frozen=True, kw_only=True):
    """``{secret: NAME}`` in a pipeline step's env: a value read from the operator's local
    secrets file at run time; only the name is ever stored."""

    secret: str


class PipelineStep(Record, frozen=True, kw_only=True):
    """One step of a pipeline: a tool command, its arguments and environment, the dataset it
    reads (``input``: empty means the previous step's output) and the one it writes."""

    name: str
    tool: str
    command: str = ""
    args: dict[str, str] = msgspec.field(default_factory=dict)
    env: dict[str, str | SecretRef] = msgspec.field(default_factory=dict)
    input: str = ""
    output: str = ""
    hub: str = ""
    timeout: float | None = None
    #: False keeps this step's output local (not published) even when the run publishes.
    publish: bool = True


class Origin(Record, frozen=True, kw_only=True):
    """Where an adopted pipeline or schedule came from: the operator, the pipeline's name
    (a schedule's id) and the etcd mod revision of the copy taken (what ``--update``
    compares against the origin's current one)."""

    operator: str
    name: str
    revision: int

    def __str__(self) -> str:
        return f"{self.operator}/{self.name}@{self.revision}"


class Pipeline(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/pipelines/{name}``: steps run in order, each one's output the next
    one's input. ``origin`` names the pipeline it was adopted from (``None``: written here)."""

    name: str
    operator: str
    steps: list[PipelineStep]
    description: str = ""
    hub: str = ""
    created_at: str = ""
    updated_at: str = ""
    origin: Origin | None = None


class PipelineEntry(Record, frozen=True):
    """A stored pipeline as read: the pipeline, its key and its mod revision.

    :meth:`to_dict` flattens the pipeline beside ``key`` and ``revision`` (the CLI's JSON)."""

    pipeline: Pipeline
    key: str
    revision: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.pipeline.to_dict(), "key": self.key, "revision": self.revision}


class PipelineChange(Record, frozen=True):
    """What `mao pipeline add` did: ``created``, ``updated`` or ``unchanged`` (`mao pipeline
    adopt`: ``adopted``, ``updated`` or ``unchanged``)."""

    action: str
    entry: PipelineEntry

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "pipeline": self.entry.to_dict()}


class Schedule(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/schedules/{id}``: when to run a tool's command or a pipeline.

    ``cron`` is a cron expression (five fields, or six with seconds first), evaluated in
    ``tz``; ``every`` (hourly, daily, weekly) is kept as the user said it, with its cron
    expression in ``cron``. A run missed while no node ran is caught up once, for the
    latest missed slot, if it is less than ``misfire_grace`` seconds late; a failed run is
    tried up to ``attempts`` times in all. ``federation`` schedules run on the elected
    leader among the live nodes. ``origin`` names the schedule it was adopted from.
    """

    id: str
    operator: str
    kind: str  # "tool" or "pipeline"
    target: str  # the tool's or the pipeline's name
    command: str = ""
    args: dict[str, str] = msgspec.field(default_factory=dict)
    hub: str = ""
    dataset: str = ""
    runner: str = "process"
    publish: bool = True
    cron: str = ""
    every: str = ""
    tz: str = "UTC"
    federation: bool = False
    paused: bool = False
    attempts: int = 3
    misfire_grace: float = 3600.0
    created_at: str = ""
    updated_at: str = ""
    origin: Origin | None = None


class Fire(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/fires/{schedule}/{slot}``: one slot of a schedule, claimed before it
    runs (create-if-absent: a slot runs once), then updated as its attempts go.

    ``slot`` is the scheduled time (ISO, UTC); ``status`` is ``running``, ``succeeded``,
    ``failed`` (every attempt failed), ``skipped`` (the previous run still ran), ``missed``
    (later than the misfire grace) or ``retrying``; ``runs`` lists the attempts' run ids.
    """

    schedule: str
    slot: str
    status: str
    attempt: int = 0
    attempts: int = 0
    runs: list[str] = msgspec.field(default_factory=list)
    node: str = ""
    claimed_at: str = ""
    finished_at: str = ""
    message: str = ""
    catch_up: bool = False


class ScheduleEntry(Record, frozen=True, kw_only=True):
    """A stored schedule as read: the schedule, its mod revision (what a pause or a removal
    compares against), its next fire time (ISO, UTC; ``""`` when paused or never again),
    and its latest claimed slot (``None`` before its first fire)."""

    schedule: Schedule
    revision: int
    next_fire: str = ""
    last: Fire | None = None


class ScheduleChange(Record, frozen=True):
    """What `mao schedule adopt` did: ``adopted``, ``updated`` or ``unchanged``."""

    action: str
    entry: ScheduleEntry

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "schedule": self.entry.to_dict()}


class Subscription(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/subscriptions/{id}``: follow a hub's new snapshots (or its spikes).

    A new snapshot that matches (*hub*, and *of_operator* and *dataset* when set) is handled
    once: notified (``notify``: ``log``, ``webhook`` to *url*, or ``command`` run as
    *argv* with the event as JSON on stdin), and, with *tool*, retrieved, verified and given
    to the tool's *command* as ``MAO_INPUT_DIR``. With *spikes*, ``spike`` events of the hub
    are followed instead (notified, never run).
    """

    id: str
    operator: str
    hub: str
    of_operator: str = ""
    dataset: str = ""
    tool: str = ""
    command: str = ""
    publish: bool = True
    notify: str = "log"
    url: str = ""
    argv: list[str] = msgspec.field(default_factory=list)
    spikes: bool = False
    created_at: str = ""


class Handled(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{op}/handled/{subscription}/{claim}``: a snapshot (or spike) a subscription
    handled, claimed before it is handled so that it is handled once."""

    subscription: str
    key: str
    commit: str = ""
    status: str = "handling"  # handling, done, failed
    run: str = ""
    message: str = ""
    at: str = ""


class AuditScore(Record, frozen=True, kw_only=True):
    """One snapshot's standing in an audit (see :mod:`maomao.analysis.audit`): ``rank`` 1 is
    the best; a snapshot that could not be retrieved and verified ranks last, ``problem``
    saying why, with no counts."""

    operator: str
    dataset: str
    commit: str
    rank: int
    rows: int = 0
    unique: int = 0
    missing: int = 0
    disputed: int = 0
    problem: str = ""


class Audit(Record, frozen=True, kw_only=True):
    """``{ns}/audits/{hub}/{date}/{dataset}``: what an audit decided, how, and every score.

    ``decision`` names the operator whose snapshot ranked first (``commit`` is its commit,
    tagged ``tag`` in the auditor's dataset repository ``repository``); ``method`` is
    ``keyed`` (rows known by ``key``) or ``multiset``.
    """

    id: str
    hub: str
    date: str
    dataset: str
    auditor: str
    method: str
    key: list[str] = msgspec.field(default_factory=list)
    decision: str
    commit: str
    scores: list[AuditScore] = msgspec.field(default_factory=list)
    tag: str = ""
    repository: str = ""
    decided_at: str = ""


class Vote(Record, frozen=True, kw_only=True):
    """``{ns}/ops/{voter}/votes/{hub}/{date}/{operator}``: one voter's verdict on one
    operator's snapshot of a day."""

    voter: str
    hub: str
    date: str
    operator: str
    valid: bool
    reason: str = ""
    at: str = ""


class Verdict(Record, frozen=True, kw_only=True):
    """``{ns}/audits/{hub}/verdicts/{date}/{operator}``: the elected tallier's count.

    ``verdict`` is ``validated`` or ``rejected``: more than half of the ``live`` members
    voted that way (``valid`` and ``invalid`` are the live members' votes).
    """

    hub: str
    date: str
    operator: str
    verdict: str
    valid: int
    invalid: int
    live: list[str] = msgspec.field(default_factory=list)
    tallied_by: str = ""
    at: str = ""
