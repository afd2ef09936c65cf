"""The tools registry (who offers which collector) and installing a tool locally.

A tool's record lives under its author's prefix (``{ns}/ops/{op}/tools/{name}``) and its
name is claimed in the shared index (``{ns}/index/tools/{name}``). The claim is created
only if absent, in the same transaction as the record, so two operators adding one name
at once cannot both win, and nothing is ever overwritten silently:

- adding a name nobody holds: one transaction guarded on the claim's absence writes the
  claim and the record;
- adding a name we hold updates our record: guarded on the claim still being ours and
  on the record's mod revision (compare-and-swap; a concurrent update is a Conflict);
- adding a name another operator holds: :class:`NotOwner` (``tool 'x' is owned by bob``);
- removing deletes record and claim in one transaction, again only while the claim is ours.

Installing clones the tool's repository into the operator's home (``{home}/tools/{name}``)
at the registered ref (or one given), validates its ``maomao.toml`` and records the
installed commit next to it (``{home}/tools/{name}.install.json``, never in etcd).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import msgspec

from maomao.atomic import atomic_write
from maomao.clock import now_iso
from maomao.config import Config
from maomao.errors import Conflict, InvalidValue, MaoError, NotFound, NotOwner
from maomao.etcd import Compare, Delete, Get, KeyValue, Put, Store
from maomao.keys import validate_name
from maomao.manifest import Manifest, ManifestError, load_manifest
from maomao.models import Listing, Record, ToolChange, ToolClaim, ToolEntry, ToolInstall, ToolRecord
from maomao.services.filelock import file_lock
from maomao.services.store import using_store

#: Records read per transaction when listing (etcd's default limit is 128 operations).
_BATCH = 100


def not_owner(config: Config, name: str, owner: str) -> NotOwner:
    return NotOwner(config.keys.index_tool(name), owner, f"tool '{name}' is owned by {owner}")


def check_repo(repo: str) -> str:
    """A repository URL or local path that git may use and that carries no secret.

    A local path that exists is made absolute, so the record means the same from any
    working directory.
    """
    from maomao.gitstore import check_remote_url

    repo = repo.strip()
    check_remote_url(repo)
    if "://" not in repo and not _looks_scp(repo):
        local = Path(repo).expanduser()
        if local.exists():
            return str(local.resolve())
    return repo


async def check_tool_repo(repo: str, ref: str | None = None) -> Manifest:
    """What `tool add` checks before registering: the repository answers (``git
    ls-remote``), has *ref* (default: its HEAD), and a valid ``maomao.toml`` there.

    :raises GitUnreachable: the repository does not answer (exit 3).
    :raises RefNotFound: it has no such ref (exit 1).
    :raises ManifestError: no ``maomao.toml`` at the ref, or a malformed one (exit 1).
    """
    from maomao.gitstore.probe import show_file
    from maomao.manifest import MANIFEST_FILE, parse_manifest

    repo = check_repo(repo)
    _check_options(ref, None)
    raw = await asyncio.to_thread(show_file, repo, ref or None, MANIFEST_FILE)
    where = f"{repo} at {ref or 'HEAD'}"
    if raw is None:
        raise ManifestError(f"{MANIFEST_FILE} of {where}", "missing: a tool's repository has one at its root")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{MANIFEST_FILE} of {where}", "not UTF-8") from None
    return parse_manifest(text, f"{MANIFEST_FILE} of {where}")


def _looks_scp(repo: str) -> bool:
    head = repo.split("/", 1)[0]
    return ":" in head and not head.startswith(".")


def _check_options(ref: str | None, image: str | None) -> None:
    if ref:
        from maomao.gitstore.checkout import validate_ref

        validate_ref(ref)
    if image is not None and (not image.strip() or any(ch.isspace() for ch in image)):
        raise InvalidValue(f"invalid image {image!r}: a container image reference has no spaces")


def _claim_of(kv: KeyValue) -> ToolClaim:
    try:
        return ToolClaim.from_json(kv.value)
    except ValueError as exc:
        raise InvalidValue(f"unreadable tool claim at {kv.key}: {_one_line(exc)}") from None


def _tool_of(kv: KeyValue, name: str, operator: str) -> ToolRecord:
    """The tool record at *kv*, which must be *operator*'s record of *name*.

    :raises ValueError: not a tool record, or one of another tool.
    """
    record = ToolRecord.from_json(kv.value)
    if record.name != name or record.operator != operator:
        raise ValueError(f"it names tool {record.name!r} of {record.operator!r}")
    return record


def _record_of(kv: KeyValue, name: str, operator: str) -> ToolRecord:
    """:func:`_tool_of`, or :class:`InvalidValue`: one line naming the key."""
    try:
        return _tool_of(kv, name, operator)
    except ValueError as exc:
        raise InvalidValue(f"unreadable tool record at {kv.key}: {_one_line(exc)}") from None


def _known(name: str, known: list[str]) -> str:
    """`` (known: a, b); did you mean 'a'?`` for an unknown tool name (difflib's closest)."""
    import difflib

    if not known:
        return " (none is registered yet: mao tool add NAME --repo URL)"
    names = sorted(known)
    said = f" (known: {', '.join(names[:12])}{', …' if len(names) > 12 else ''})"
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return said + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


async def add_tool(
    config: Config,
    name: str,
    repo: str,
    *,
    ref: str | None = None,
    image: str | None = None,
    description: str | None = None,
    expected_revision: int | None = None,
    store: Store | None = None,
) -> ToolChange:
    """Register *name* (or update our own registration of it); see the module docstring.

    On an update, options left ``None`` keep their registered value. With
    *expected_revision* the update only happens if the record is still at that revision.

    :raises NotOwner: another operator holds the name (nothing changes).
    :raises Conflict: our record changed (or the claim went) since it was read.
    :raises InvalidValue: the URL carries credentials, or a malformed ref or image.
    """
    validate_name(name, "tool")
    given = _Given(check_repo(repo), ref, image, description)
    _check_options(ref, image)
    claim_key, record_key = config.keys.index_tool(name), config.keys.tool(config.operator, name)
    async with using_store(config, store) as s:
        if expected_revision is None:
            created = await _create_tool(config, s, name, given)
            if isinstance(created, ToolChange):
                return created
            claim_reads, record_reads = created
        else:
            claim_reads, record_reads = (await s.txn([], [Get(claim_key), Get(record_key)])).reads
        if not claim_reads:
            raise Conflict(claim_key, expected_revision or 0, 0)
        return await _update_tool(config, s, name, given, claim_reads[0], record_reads, expected_revision)


@dataclass(frozen=True)
class _Given:
    """What `tool add` was given: ``None`` options keep their registered value on an update."""

    repo: str
    ref: str | None
    image: str | None
    description: str | None

    def merged(self, name: str, operator: str, current: ToolRecord | None, now: str) -> ToolRecord:
        """The record these options make of *current* (``updated_at`` still its own)."""
        return ToolRecord(
            name=name,
            operator=operator,
            repo=self.repo,
            ref=self.ref if self.ref is not None else (current.ref if current else ""),
            image=self.image if self.image is not None else (current.image if current else ""),
            description=(
                self.description if self.description is not None else (current.description if current else "")
            ),
            created_at=current.created_at if current and current.created_at else now,
            updated_at=current.updated_at if current else now,
        )


async def _create_tool(
    config: Config, store: Store, name: str, given: _Given
) -> ToolChange | list[list[KeyValue]]:
    """Claim *name* and write its record in one transaction guarded on the claim's absence;
    when someone holds it already: what the claim and the record hold now."""
    op = config.operator
    claim_key, record_key = config.keys.index_tool(name), config.keys.tool(op, name)
    now = now_iso()
    record = given.merged(name, op, None, now)
    claim = ToolClaim(tool=name, operator=op, key=record_key, claimed_at=now)
    result = await store.txn(
        [Compare(claim_key, "create", 0)],
        [Put(claim_key, claim.to_json()), Put(record_key, record.to_json())],
        [Get(claim_key), Get(record_key)],
    )
    if result.succeeded:
        return ToolChange("created", ToolEntry(record, record_key, result.revision))
    return result.reads


async def _update_tool(
    config: Config,
    store: Store,
    name: str,
    given: _Given,
    claim_kv: KeyValue,
    record_reads: list[KeyValue],
    expected_revision: int | None,
) -> ToolChange:
    """Update our record of *name* by compare-and-swap, guarded on the claim still being ours."""
    op = config.operator
    claim_key, record_key = config.keys.index_tool(name), config.keys.tool(op, name)
    owner = _claim_of(claim_kv).operator
    if owner != op:
        raise not_owner(config, name, owner)
    current_kv = record_reads[0] if record_reads else None
    current = _record_of(current_kv, name, op) if current_kv is not None else None
    revision = current_kv.mod_revision if current_kv is not None else 0
    if expected_revision is not None and expected_revision != revision:
        raise Conflict(record_key, expected_revision, revision)
    now = now_iso()
    updated = given.merged(name, op, current, now)
    if current is not None and updated == current:
        return ToolChange("unchanged", ToolEntry(current, record_key, revision))
    updated = msgspec.structs.replace(updated, updated_at=now)
    written = await store.txn(
        [Compare(claim_key, "value", claim_kv.value), Compare(record_key, "mod", revision)],
        [Put(record_key, updated.to_json())],
        [Get(claim_key), Get(record_key)],
    )
    if not written.succeeded:
        claim_now, record_now = written.reads
        if claim_now and _claim_of(claim_now[0]).operator != op:
            raise not_owner(config, name, _claim_of(claim_now[0]).operator)
        raise Conflict(record_key, revision, record_now[0].mod_revision if record_now else 0)
    return ToolChange("updated", ToolEntry(updated, record_key, written.revision))


async def remove_tool(config: Config, name: str, *, store: Store | None = None) -> ToolEntry:
    """Delete our tool's record and its claim in one transaction; returns what was removed.

    :raises NotFound: nobody registered *name*.
    :raises NotOwner: another operator holds it (nothing changes).
    :raises Conflict: the claim changed while we removed it.
    """
    keys, op = config.keys, config.operator
    validate_name(name, "tool")
    claim_key, record_key = keys.index_tool(name), keys.tool(op, name)
    async with using_store(config, store) as s:
        read = await s.txn([], [Get(claim_key), Get(record_key)])
        claim_reads, record_reads = read.reads
        if not claim_reads:
            raise NotFound(f"tool {name!r}", f"tool '{name}' is not registered")
        claim_kv = claim_reads[0]
        owner = _claim_of(claim_kv).operator
        if owner != op:
            raise not_owner(config, name, owner)
        result = await s.txn(
            [Compare(claim_key, "value", claim_kv.value)], [Delete(record_key), Delete(claim_key)]
        )
        if not result.succeeded:
            raise Conflict(claim_key, claim_kv.mod_revision, 0)
    if record_reads:
        with contextlib.suppress(InvalidValue):  # a broken record is removed all the same
            record = _record_of(record_reads[0], name, op)
            return ToolEntry(record, record_key, record_reads[0].mod_revision)
    return ToolEntry(ToolRecord(name=name, operator=op, repo=""), record_key, 0)


async def get_tool(config: Config, name: str, *, store: Store | None = None) -> ToolEntry:
    """The registered tool *name*, whoever owns it.

    :raises NotFound: the name is not claimed, or its claim points at no record.
    """
    keys = config.keys
    validate_name(name, "tool")
    async with using_store(config, store) as s:
        claim_kv = await s.get(keys.index_tool(name))
        if claim_kv is None:
            known = [kv.key.rsplit("/", 1)[-1] for kv in await s.range(keys.index_tools)]
            raise NotFound(f"tool {name!r}", f"tool '{name}' is not registered{_known(name, known)}")
        claim = _claim_of(claim_kv)
        record_key = keys.tool(claim.operator, name)  # readers verify the pointer's target
        kv = await s.get(record_key)
    if kv is None:
        raise NotFound(f"tool {name!r}", f"tool '{name}' is claimed by {claim.operator} but has no record")
    return ToolEntry(_record_of(kv, name, claim.operator), record_key, kv.mod_revision)


async def list_tools(config: Config, *, store: Store | None = None) -> Listing[ToolEntry]:
    """Every registered tool, by name: one range over the index, then the records in batches.

    A claim or record that cannot be read, or that disagrees with its key, is skipped
    with a warning.
    """
    keys = config.keys
    warnings: list[str] = []
    async with using_store(config, store) as s:
        claims = await s.range(keys.index_tools)
        wanted: list[tuple[str, str, str]] = []  # (name, owner, record key)
        for kv in claims:
            name = kv.key.rsplit("/", 1)[-1]
            try:
                owner = _claim_of(kv).operator
                wanted.append((name, owner, keys.tool(owner, name)))
            except MaoError as exc:
                warnings.append(f"skipped {kv.key}: {_one_line(exc)}")
        entries: list[ToolEntry] = []
        for start in range(0, len(wanted), _BATCH):
            batch = wanted[start : start + _BATCH]
            result = await s.txn([], [Get(key) for _, _, key in batch])
            for (name, owner, key), found in zip(batch, result.reads, strict=True):
                if not found:
                    continue
                try:
                    entries.append(ToolEntry(_tool_of(found[0], name, owner), key, found[0].mod_revision))
                except ValueError as exc:
                    warnings.append(f"skipped {key}: {_one_line(exc)}")
    return Listing(items=entries, warnings=warnings)


# -- local installation ------------------------------------------------------------------------


def install_file(config: Config, name: str) -> Path:
    """Where the install record of *name* is kept: next to its checkout."""
    tool_dir = config.paths.tool_dir(name)
    return tool_dir.with_name(f"{tool_dir.name}.install.json")


def tool_lock(config: Config, name: str) -> Path:
    """The lock runs share and installs take exclusively, so code never changes under a run."""
    return config.paths.locks_dir / "tools" / f"{validate_name(name, 'tool')}.lock"


def read_install(config: Config, name: str) -> ToolInstall | None:
    """The local install record of *name*, or ``None`` when the tool is not installed here."""
    path = install_file(config, name)
    try:
        install = ToolInstall.from_json(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return install if (Path(install.path) / ".git").exists() else None


def _write_install(config: Config, install: ToolInstall) -> None:
    atomic_write(install_file(config, install.tool), install.to_json())


async def install_tool(
    config: Config, name: str, *, ref: str | None = None, store: Store | None = None
) -> ToolInstall:
    """Clone (or update in place) the tool's repository at *ref* (default: the registered
    ref, else the remote's HEAD) and validate its manifest.

    A manifest that is missing or malformed is one :class:`ManifestError` line naming the
    file; the previous installation (if any) is then put back, a first one removed.

    :raises NotFound: the tool is not registered.
    :raises GitError: the repository cannot be fetched or has no such ref.
    """
    entry = await get_tool(config, name, store=store)
    if ref:
        _check_options(ref, None)
    wanted = ref or entry.record.ref or None
    dest = config.paths.tool_dir(name)
    async with file_lock(tool_lock(config, name)):
        previous = read_install(config, name)
        commit = await asyncio.to_thread(_checkout, entry.record.repo, wanted, dest)
        try:
            manifest = await asyncio.to_thread(load_manifest, dest)
        except ManifestError:
            if previous is not None and previous.commit != commit:
                await asyncio.to_thread(_checkout, entry.record.repo, previous.commit, dest)
            elif previous is None:
                await asyncio.to_thread(shutil.rmtree, dest, ignore_errors=True)
                install_file(config, name).unlink(missing_ok=True)
            raise
        install = ToolInstall(
            tool=name,
            owner=entry.record.operator,
            repo=entry.record.repo,
            ref=wanted or "",
            commit=commit,
            path=str(dest),
            manifest_name=manifest.name,
            commands=list(manifest.command_names),
            image=entry.record.image,
            installed_at=now_iso(),
            previous_commit=previous.commit if previous is not None else "",
        )
        _write_install(config, install)
    return install


def _checkout(repo: str, ref: str | None, dest: Path) -> str:
    from maomao.gitstore.checkout import clone_or_update

    return clone_or_update(repo, ref, dest)


class InstalledTool(Record, frozen=True):
    """A tool installed in this home: its install record and its validated manifest (a
    frozen dataclass of :mod:`maomao.manifest`, which msgspec encodes and describes too)."""

    install: ToolInstall
    manifest: Manifest


def installed_manifest(config: Config, name: str) -> InstalledTool | None:
    """The local install of *name* and its validated manifest, or ``None`` if not installed."""
    install = read_install(config, name)
    if install is None:
        return None
    return InstalledTool(install, load_manifest(Path(install.path)))


async def ensure_installed(config: Config, name: str, *, store: Store | None = None) -> InstalledTool:
    """The tool's local install and manifest, installing it first if needed."""
    validate_name(name, "tool")
    found = installed_manifest(config, name)
    if found is not None:
        return found
    install = await install_tool(config, name, store=store)
    return InstalledTool(install, load_manifest(Path(install.path)))
