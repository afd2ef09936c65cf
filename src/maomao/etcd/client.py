"""The store: a small adapter over ``etcd3aio``, the only code that talks to the client.

It translates every client error once, at this boundary, into ``maomao.errors`` (with the
endpoints, keys and revisions the caller needs), re-authenticates once when a token dies,
and exposes only what maomao uses: get, range, put, compare-and-swap, create-if-absent,
delete, transactions, leases, locks, elections and resumable watches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import grpc
import grpc.aio
from etcd3aio import (
    Etcd3Client,
    EtcdConnectionError,
    EtcdError,
    EtcdPermissionDeniedError,
    EtcdTransientError,
    EtcdUnauthenticatedError,
    PermissionType,
    SortOrder,
    SortTarget,
    prefix_range_end,
)
from etcd3aio._protobuf import Compare as PbCompare
from etcd3aio._protobuf import PutRequest, RequestOp
from etcd3aio.kv import KVService

from maomao.errors import EXIT_UNREACHABLE, Conflict, MaoError, PermissionDenied, Unavailable
from maomao.etcd.types import (
    Alarm,
    Compare,
    Delete,
    Get,
    KeyValue,
    Member,
    Op,
    Put,
    RangeResult,
    ServerStatus,
    TxnResult,
)

if TYPE_CHECKING:
    from maomao.etcd.election import Election
    from maomao.etcd.leases import Lease
    from maomao.etcd.locks import Lock
    from maomao.etcd.watch import Watch

log = logging.getLogger(__name__)
T = TypeVar("T")

_COMPARE_RESULT = {"==": 0, ">": 1, "<": 2, "!=": 3}
_COMPARE_TARGET = {"version": 0, "create": 1, "mod": 2, "value": 3}


def _b(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


_kv = KeyValue.wrap


def host_port(url: str) -> str:
    """``http://127.0.0.1:2379`` → ``127.0.0.1:2379`` (what gRPC wants)."""
    return url.split("://", 1)[-1].rstrip("/")


class Store:
    """An open connection to the federation's etcd.

    Use it as ``async with Store([...]) as store:``; it must be created inside the event
    loop that uses it (grpc.aio channels belong to their loop).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        user: str | None = None,
        password: str | None = None,
        ca_cert: bytes | None = None,
        cert_key: bytes | None = None,
        cert_chain: bytes | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self._user = user
        self._password = password
        tls: dict[str, Any] = {}
        if ca_cert:
            tls["ca_cert"] = ca_cert
            if cert_key and cert_chain:
                tls["cert_key"] = cert_key
                tls["cert_chain"] = cert_chain
        self._client = Etcd3Client(
            [host_port(e) for e in self.endpoints],
            rpc_max_attempts=3,
            tls_server_name="localhost" if tls and len(self.endpoints) > 1 else None,
            **tls,
        )
        self._connected = False

    # -- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> Store:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        await self._client.connect()
        self._connected = True
        await self.reauthenticate()  # the first login, when there is a user

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            await self._client.close()

    @property
    def raw(self) -> Etcd3Client:
        """The underlying client, for the other modules of ``maomao.etcd`` only."""
        return self._client

    async def _authenticate(self) -> None:
        assert self._client.auth is not None and self._user is not None
        resp = await self._client.auth.authenticate(self._user, self._password or "", timeout=self.timeout)
        self._client.set_token(resp.token)

    # -- the one error boundary --------------------------------------------------------
    async def call(self, fn: Callable[[], Awaitable[T]], what: str = "") -> T:
        """Run one client call under the deadline, translating errors; re-auth once."""
        for attempt in (1, 2):
            try:
                # every call passes timeout=, which etcd3aio applies to the whole retry loop
                return await fn()
            except EtcdUnauthenticatedError as exc:
                if attempt == 1 and self.authenticates:
                    log.info("etcd token refused, authenticating again")
                    await self.reauthenticate()
                    continue
                raise PermissionDenied(f"etcd refused the credentials: {exc}") from None
            except BaseException as exc:
                await self._translate_explained(exc, what)
        raise AssertionError("unreachable")

    async def _guard(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await fn()
        except BaseException as exc:
            await self._translate_explained(exc)
            raise

    async def _translate_explained(self, exc: BaseException, what: str = "") -> None:
        """:meth:`translate`, and when etcd is unreachable yet something answered on its
        port, say what answered (a web server, a proxy) instead of a bare gRPC failure."""
        if isinstance(exc, MaoError):
            raise exc  # translated (and explained) already, by a nested call
        try:
            self.translate(exc, what)
        except Unavailable as unavailable:
            if unavailable.detail in ("connection refused", "no answer in time"):
                raise
            probe_timeout = min(1.0, self.timeout / 4)
            answers = await asyncio.gather(
                *(asyncio.to_thread(probe_not_etcd, e, probe_timeout) for e in self.endpoints)
            )
            found = [a for a in answers if a]
            if not found:
                raise
            raise Unavailable(self.endpoints, "; ".join(found)) from None

    async def reauthenticate(self) -> None:
        """Log in again (after etcd refused a token); a no-op without a user.

        :raises PermissionDenied: when etcd refuses the credentials.
        :raises Unavailable: when etcd cannot be reached in time.
        """
        if self._user:
            await self._guard(self._authenticate)

    @property
    def authenticates(self) -> bool:
        """Whether this store logs in (a refused token is then worth one more login)."""
        return bool(self._user)

    def translate(self, exc: BaseException, what: str = "") -> Any:
        """Raise the maomao error for a client error; re-raise anything else unchanged."""
        if isinstance(exc, MaoError | asyncio.CancelledError | KeyboardInterrupt):
            raise exc
        if isinstance(exc, TimeoutError | EtcdConnectionError | EtcdTransientError):
            raise Unavailable(self.endpoints, _detail(exc)) from None
        if isinstance(exc, EtcdPermissionDeniedError):
            raise PermissionDenied(f"etcd permission denied{' on ' + what if what else ''}") from None
        if isinstance(exc, EtcdUnauthenticatedError):
            raise PermissionDenied(f"etcd refused the credentials: {exc}") from None
        if isinstance(exc, grpc.aio.AioRpcError):
            code = exc.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(self.endpoints, code.name) from None
            if code == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied(f"etcd permission denied{' on ' + what if what else ''}") from None
            if "authentication failed" in (exc.details() or ""):
                raise PermissionDenied(f"etcd refused the credentials of {self._user}") from None
            raise MaoError(f"etcd error: {exc.details() or code.name}") from None
        if isinstance(exc, EtcdError):
            raise MaoError(f"etcd error: {exc}") from None
        raise exc

    # -- reads -------------------------------------------------------------------------
    async def get(self, key: str) -> KeyValue | None:
        kv = self._client.kv
        assert kv is not None
        resp = await self.call(lambda: kv.get(key, timeout=self.timeout), key)
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def range(
        self,
        prefix: str,
        *,
        end: str | None = None,
        limit: int = 0,
        keys_only: bool = False,
        descending: bool = False,
        revision: int = 0,
        serializable: bool = False,
    ) -> RangeResult:
        """Every key under *prefix* (or in ``[prefix, end)``), sorted by key."""
        kv = self._client.kv
        assert kv is not None
        range_end = _b(end) if end is not None else prefix_range_end(prefix)
        order = SortOrder.DESCEND if descending else SortOrder.NONE
        resp = await self.call(
            lambda: kv.get(
                prefix,
                range_end=range_end,
                revision=revision,
                serializable=serializable,
                limit=limit,
                sort_order=order,
                sort_target=SortTarget.KEY,
                keys_only=keys_only,
                timeout=self.timeout,
            ),
            prefix,
        )
        return RangeResult(resp.kvs, int(resp.header.revision), int(resp.count), bool(resp.more), _kv)

    async def count(self, prefix: str) -> int:
        kv = self._client.kv
        assert kv is not None
        resp = await self.call(
            lambda: kv.get(prefix, range_end=prefix_range_end(prefix), count_only=True, timeout=self.timeout),
            prefix,
        )
        return int(resp.count)

    async def revision(self) -> int:
        """The current revision of the cluster (one cheap read)."""
        kv = self._client.kv
        assert kv is not None
        resp = await self.call(lambda: kv.get("\0", count_only=True, timeout=self.timeout))
        return int(resp.header.revision)

    # -- writes ------------------------------------------------------------------------
    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        """Write *key*; returns the revision of the write."""
        kv = self._client.kv
        assert kv is not None
        resp = await self.call(lambda: kv.put(key, value, lease=lease, timeout=self.timeout), key)
        return int(resp.header.revision)

    async def create(self, key: str, value: bytes | str, *, lease: int = 0) -> KeyValue | None:
        """Create *key* only if absent. Returns ``None`` on success, else the existing entry."""
        result = await self.txn([Compare(key, "create", 0)], [Put(key, value, lease)], [Get(key)])
        if result.succeeded:
            return None
        existing = result.reads[0]
        return existing[0] if existing else None

    async def cas(self, key: str, value: bytes | str, expected_revision: int, *, lease: int = 0) -> int:
        """Write *key* only if its mod revision is still *expected_revision* (0: absent).

        :raises Conflict: with the revision actually found.
        """
        result = await self.txn(
            [Compare(key, "mod", expected_revision)], [Put(key, value, lease)], [Get(key)]
        )
        if not result.succeeded:
            found = result.reads[0]
            raise Conflict(key, expected_revision, found[0].mod_revision if found else 0)
        return result.revision

    async def delete(self, key: str, *, prefix: bool = False, expected_revision: int | None = None) -> int:
        """Delete a key (or a prefix); returns how many keys went.

        With *expected_revision*, delete only if the key was not changed since.
        """
        if expected_revision is not None:
            result = await self.txn([Compare(key, "mod", expected_revision)], [Delete(key)], [Get(key)])
            if not result.succeeded:
                found = result.reads[0]
                raise Conflict(key, expected_revision, found[0].mod_revision if found else 0)
            return 1
        kv = self._client.kv
        assert kv is not None
        end = prefix_range_end(key) if prefix else None
        resp = await self.call(lambda: kv.delete(key, range_end=end, timeout=self.timeout), key)
        return int(resp.deleted)

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """One atomic transaction: if every guard holds, run *success*, else *failure*."""
        kv = self._client.kv
        assert kv is not None
        cmp = [_compare(c) for c in compare]
        ok = [_op(o) for o in success]
        ko = [_op(o) for o in failure]
        what = compare[0].key if compare else (success[0].key if success else "")
        resp = await self.call(lambda: kv.txn(cmp, ok, ko, timeout=self.timeout), what)
        reads = [
            [_kv(i) for i in r.response_range.kvs] for r in resp.responses if r.HasField("response_range")
        ]
        return TxnResult(bool(resp.succeeded), int(resp.header.revision), reads)

    # -- cluster -----------------------------------------------------------------------
    async def status(self) -> ServerStatus:
        """The status of the member this store's channel reaches (open a store on one
        endpoint to ask a given member)."""
        maint = self._client.maintenance
        assert maint is not None
        resp = await self.call(lambda: maint.status(timeout=self.timeout))
        return ServerStatus(
            endpoint=",".join(self.endpoints),
            version=resp.version,
            db_size=int(resp.dbSize),
            leader=f"{resp.leader:x}",
            member_id=f"{resp.header.member_id:x}",
            raft_term=int(resp.raftTerm),
            revision=int(resp.header.revision),
            db_size_in_use=int(resp.dbSizeInUse),
            raft_index=int(resp.raftIndex),
            raft_applied_index=int(resp.raftAppliedIndex),
            is_learner=bool(resp.isLearner),
            errors=[str(e) for e in resp.errors],
        )

    async def members(self, *, linearizable: bool = True) -> list[Member]:
        """The member list; not *linearizable*: as the member reached knows it (answers
        without a quorum, may be stale)."""
        cluster = self._client.cluster
        assert cluster is not None
        resp = await self.call(lambda: cluster.member_list(linearizable=linearizable, timeout=self.timeout))
        return _members(resp.members)

    async def member_add(
        self, peer_urls: Sequence[str], *, learner: bool = False
    ) -> tuple[Member, list[Member]]:
        """Add a member (a non-voting learner with *learner*); returns it and the new list.

        :raises MembershipBusy: when etcd refuses for now (unhealthy cluster, too many learners).
        """
        cluster = self._client.cluster
        assert cluster is not None
        resp = await self._membership(
            lambda: cluster.member_add(
                list(peer_urls), is_learner=learner, timeout=self.timeout, max_attempts=1
            ),
            "member add",
        )
        return _members([resp.member])[0], _members(resp.members)

    async def member_promote(self, member_id: str) -> list[Member]:
        """Make a learner a voting member.

        :raises MembershipBusy: while the learner is not in sync with the leader yet.
        """
        cluster = self._client.cluster
        assert cluster is not None
        resp = await self._membership(
            lambda: cluster.member_promote(int(member_id, 16), timeout=self.timeout, max_attempts=1),
            "member promote",
        )
        return _members(resp.members)

    async def member_remove(self, member_id: str) -> list[Member]:
        """Remove a member (its process goes on running: stop it too)."""
        cluster = self._client.cluster
        assert cluster is not None
        resp = await self._membership(
            lambda: cluster.member_remove(int(member_id, 16), timeout=self.timeout, max_attempts=1),
            "member remove",
        )
        return _members(resp.members)

    async def member_update(self, member_id: str, peer_urls: Sequence[str]) -> list[Member]:
        """Change the peer URLs a member is reached at."""
        cluster = self._client.cluster
        assert cluster is not None
        resp = await self._membership(
            lambda: cluster.member_update(int(member_id, 16), list(peer_urls), timeout=self.timeout),
            "member update",
        )
        return _members(resp.members)

    async def _membership(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        """A membership change: the refusals etcd gives right after another change, or
        while a learner catches up, become :class:`MembershipBusy` (worth a retry)."""
        try:
            return await self.call(fn, what)
        except MaoError as exc:
            cause = exc.__context__
            said = cause.details() if isinstance(cause, grpc.aio.AioRpcError) else str(cause or "")
            text = f"{exc} {said}"
            for reason in RETRYABLE_MEMBERSHIP:
                if reason in text:
                    raise MembershipBusy(what, reason) from None
            raise

    async def compact(self, revision: int) -> None:
        """Drop the history before *revision* (physically: wait until the backend did)."""
        kv = self._client.kv
        assert kv is not None
        await self.call(lambda: kv.compact(revision, physical=True, timeout=self.timeout), "compact")

    async def defragment(self, timeout: float = 120.0) -> None:
        """Give the freed pages of the DB file back, on the member this store reaches.
        The member answers nothing else meanwhile: do one member at a time."""
        maint = self._client.maintenance
        assert maint is not None
        await self.call(lambda: maint.defragment(timeout=timeout, max_attempts=1), "defragment")

    async def alarms(self) -> list[Alarm]:
        """The alarms raised on any member."""
        maint = self._client.maintenance
        assert maint is not None
        resp = await self.call(lambda: maint.alarms(timeout=self.timeout))
        names = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}
        return [
            Alarm(member_id=f"{a.memberID:x}", alarm=names.get(int(a.alarm), str(a.alarm)))
            for a in resp.alarms
        ]

    async def grant(self, ttl: int) -> int:
        """A lease that is not kept alive: keys put with it vanish after *ttl* seconds."""
        api = self._client.lease
        assert api is not None
        resp = await self.call(lambda: api.grant(ttl, timeout=self.timeout), "lease")
        return int(resp.ID)

    # -- users, roles and auth (etcd RBAC: root only, once auth is on) -----------------
    def _auth_api(self) -> Any:
        api = self._client.auth
        assert api is not None
        return api

    async def auth_enabled(self) -> bool:
        """Whether etcd has auth on; an anonymous store may ask too (etcd then refuses the
        question for want of a user name, which only an etcd with auth on does)."""
        api = self._auth_api()

        async def status() -> bool:
            try:
                return bool((await api.auth_status(timeout=self.timeout)).enabled)
            except (EtcdError, grpc.aio.AioRpcError) as exc:
                text = str(exc.details() if isinstance(exc, grpc.aio.AioRpcError) else exc)
                if not self._user and "user name is empty" in text:
                    return True
                raise

        return await self.call(status, "auth status")

    async def auth_enable(self) -> None:
        """Turn auth on (etcd needs a ``root`` user with the ``root`` role first)."""
        api = self._auth_api()
        await self.call(lambda: api.auth_enable(timeout=self.timeout), "auth enable")

    async def auth_disable(self) -> None:
        api = self._auth_api()
        await self.call(lambda: api.auth_disable(timeout=self.timeout), "auth disable")

    async def token_kind(self) -> Literal["jwt", "simple", "none"]:
        """What kind of token etcd issues to this store's user: ``jwt`` (signed, survives
        an etcd restart) or ``simple`` (lost with a restart); ``none`` without a user."""
        if not self._user:
            return "none"
        api = self._auth_api()
        user, password = self._user, self._password or ""
        resp = await self.call(lambda: api.authenticate(user, password, timeout=self.timeout), "authenticate")
        # a JWT is three base64url parts; a simple token is "random.index"
        return "jwt" if str(resp.token).count(".") == 2 else "simple"

    async def users(self) -> list[str]:
        api = self._auth_api()
        resp = await self.call(lambda: api.user_list(timeout=self.timeout), "user list")
        return sorted(str(u) for u in resp.users)

    async def user_add(self, name: str, password: str) -> None:
        api = self._auth_api()
        await self.call(lambda: api.user_add(name, password, timeout=self.timeout), f"user {name}")

    async def user_delete(self, name: str) -> None:
        api = self._auth_api()
        await self.call(lambda: api.user_delete(name, timeout=self.timeout), f"user {name}")

    async def user_roles(self, name: str) -> list[str]:
        api = self._auth_api()
        resp = await self.call(lambda: api.user_get(name, timeout=self.timeout), f"user {name}")
        return sorted(str(r) for r in resp.roles)

    async def user_grant_role(self, user: str, role: str) -> None:
        api = self._auth_api()
        await self.call(lambda: api.user_grant_role(user, role, timeout=self.timeout), f"user {user}")

    async def roles(self) -> list[str]:
        api = self._auth_api()
        resp = await self.call(lambda: api.role_list(timeout=self.timeout), "role list")
        return sorted(str(r) for r in resp.roles)

    async def role_add(self, name: str) -> None:
        api = self._auth_api()
        await self.call(lambda: api.role_add(name, timeout=self.timeout), f"role {name}")

    async def role_delete(self, name: str) -> None:
        api = self._auth_api()
        await self.call(lambda: api.role_delete(name, timeout=self.timeout), f"role {name}")

    async def role_grant_permission(
        self, role: str, key: str, mode: Literal["read", "write", "readwrite"], *, prefix: bool
    ) -> None:
        """Let *role* read and/or write *key* (every key under it with *prefix*)."""
        api = self._auth_api()
        perm = {
            "read": PermissionType.READ,
            "write": PermissionType.WRITE,
            "readwrite": PermissionType.READWRITE,
        }
        end = prefix_range_end(key) if prefix else None
        await self.call(
            lambda: api.role_grant_permission(role, key, end, perm_type=perm[mode], timeout=self.timeout),
            f"role {role}",
        )

    async def role_permissions(self, role: str) -> list[tuple[str, str, str]]:
        """``(mode, key, range_end)`` of every permission of *role* (range_end ``""``: one key)."""
        api = self._auth_api()
        resp = await self.call(lambda: api.role_get(role, timeout=self.timeout), f"role {role}")
        names = {0: "read", 1: "write", 2: "readwrite"}
        return [
            (
                names.get(int(p.permType), "?"),
                p.key.decode("utf-8", "replace"),
                p.range_end.decode("utf-8", "replace"),
            )
            for p in resp.perm
        ]

    # -- coordination (see the modules for the semantics) ------------------------------
    def lease(self, ttl: int) -> Lease:
        from maomao.etcd.leases import Lease

        return Lease(self, ttl)

    def lock(self, prefix: str, *, ttl: int = 15, timeout: float | None = 30.0, value: str = "") -> Lock:
        from maomao.etcd.locks import Lock

        return Lock(self, prefix, ttl=ttl, timeout=timeout, value=value)

    def election(self, prefix: str, value: str, *, ttl: int = 15) -> Election:
        from maomao.etcd.election import Election

        return Election(self, prefix, value=value, ttl=ttl)

    def watch(
        self, key: str, *, prefix: bool = True, start_revision: int = 0, prev_kv: bool = False
    ) -> Watch:
        """Watch *key* (a prefix unless ``prefix=False``) from *start_revision* (0: now)."""
        from maomao.etcd.watch import Watch

        return Watch(self, key, prefix=prefix, start_revision=start_revision, prev_kv=prev_kv)

    async def ping(self) -> None:
        """Raise :class:`Unavailable` unless etcd answers a read."""
        await self.revision()


#: What etcd answers to a membership change it refuses for now, not for good.
RETRYABLE_MEMBERSHIP = (
    "unhealthy cluster",
    "too many learner members",
    "can only promote a learner member which is in sync with leader",
    "not enough started members",
    "leader changed",
)


class MembershipBusy(MaoError):
    """etcd refused a membership change for now (right after another one, or while a
    learner catches up): retry a little later."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"etcd refused {what} for now: {reason} (retry in a few seconds)")
        self.what = what
        self.reason = reason


def _members(raw: Sequence[Any]) -> list[Member]:
    return [
        Member(
            id=f"{m.ID:x}",
            name=m.name,
            peer_urls=list(m.peerURLs),
            client_urls=list(m.clientURLs),
            is_learner=bool(m.isLearner),
        )
        for m in raw
    ]


#: gRPC codes after which a stream or a call is worth trying again: the server is away,
#: slow, shutting down (CANCELLED) or the connection was reset mid-stream (INTERNAL).
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether *exc* is a passing failure to reach etcd (retry), not a refusal or a bug."""
    if isinstance(exc, EtcdConnectionError | EtcdTransientError | TimeoutError):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in TRANSIENT_CODES


def is_unauthenticated(exc: BaseException) -> bool:
    """Whether etcd refused the token of *exc*'s call (a new login may fix it)."""
    if isinstance(exc, EtcdUnauthenticatedError):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAUTHENTICATED


def _detail(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc)
    if "Connection refused" in text or "connection refused" in text:
        return "connection refused"
    if "Failed parsing HTTP/2" in text or "http1.x" in text:
        return "the server there does not speak gRPC"
    if "DEADLINE_EXCEEDED" in text or "Deadline Exceeded" in text:
        return "no answer in time"
    return text.split("\n", 1)[0][:160]


def probe_not_etcd(url: str, timeout: float) -> str | None:
    """What answers ``GET {url}/version`` when it is not etcd, or ``None`` (nothing answered,
    or etcd did). Blocking: run it in a thread. It sends no credentials."""
    import json
    import urllib.error
    import urllib.request

    if not url.startswith("http://"):
        return None  # no TLS handshake with a stranger just to describe it
    try:
        with urllib.request.urlopen(f"{url}/version", timeout=timeout) as resp:
            status, server, body = resp.status, resp.headers.get("Server", ""), resp.read(4096)
    except urllib.error.HTTPError as exc:
        status, server, body = exc.code, exc.headers.get("Server", ""), b""
    except (OSError, ValueError):
        return None
    try:
        if "etcdserver" in json.loads(body):
            return None
    except (ValueError, TypeError):
        pass
    by = f", server {printable_header(server)}" if server else ""
    return f"something that is not etcd answers at {url}: HTTP {status} to GET /version{by}"


def printable_header(text: str) -> str:
    """A header value from a stranger, cut short and without control characters."""
    return "".join(c for c in text[:80] if c.isprintable())


def _compare(c: Compare) -> Any:
    key = _b(c.key)
    result = _COMPARE_RESULT[c.op]
    if c.target == "value":
        return KVService.txn_compare_value(
            key, _b(c.value) if not isinstance(c.value, int) else b"", result=result
        )
    if c.target == "version":
        return KVService.txn_compare_version(key, int(c.value), result=result)
    # the revision guards are built as messages directly: a batch of the object tree sends
    # one per key, and etcd3aio's builders cost about three times as much
    if c.target == "create":
        return PbCompare(result=result, target=_COMPARE_TARGET["create"], key=key, create_revision=int(c.value))
    return PbCompare(result=result, target=_COMPARE_TARGET["mod"], key=key, mod_revision=int(c.value))


def _op(op: Op) -> Any:
    if isinstance(op, Put):
        return RequestOp(request_put=PutRequest(key=_b(op.key), value=_b(op.value), lease=op.lease))
    if isinstance(op, Delete):
        return KVService.txn_op_delete(_b(op.key), range_end=prefix_range_end(op.key) if op.prefix else None)
    return KVService.txn_op_get(_b(op.key), range_end=prefix_range_end(op.key) if op.prefix else None)
