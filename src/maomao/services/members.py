"""Who is in the federation: known operators (index) and who is online (presence)."""

from __future__ import annotations

from maomao.config import Config
from maomao.errors import InvalidName
from maomao.etcd import Store, open_store
from maomao.keys import validate_name
from maomao.models import Listing, MemberInfo, Presence


async def list_members(config: Config, store: Store | None = None) -> Listing[MemberInfo]:
    """Two range reads, whose cost grows with the number of operators only.

    A presence that is not a presence record of its operator (another node's bad JSON, a
    wrong type) is skipped with a warning; that operator shows as known but offline.
    """
    keys = config.keys
    if store is None:
        async with open_store(config) as own:
            return await list_members(config, own)
    known = await store.range(keys.index_operators, keys_only=True)
    online = await store.range(keys.index_presences)
    warnings: list[str] = []
    present: dict[str, Presence] = {}
    for kv in online:
        name = kv.key.rsplit("/", 1)[-1]
        try:
            p = Presence.from_json(kv.value)
            if p.operator != name:
                raise ValueError(f"the presence names operator {p.operator!r}")
            validate_name(name, "operator")
        except (ValueError, InvalidName) as exc:
            warnings.append(f"skipped {kv.key}: {' '.join(str(exc).split())}")
            continue
        present[name] = p
    names = set()
    for kv in known:
        name = kv.key.rsplit("/", 1)[-1]
        try:
            names.add(validate_name(name, "operator"))
        except InvalidName as exc:
            warnings.append(f"skipped {kv.key}: {exc}")
    members = []
    for name in sorted(names | set(present)):
        seen = present.get(name)
        if seen is None:
            members.append(MemberInfo(operator=name, online=False))
        else:
            members.append(
                MemberInfo(
                    operator=name,
                    online=True,
                    host=seen.host,
                    pid=seen.pid,
                    since=seen.started_at,
                    version=seen.version,
                    api_url=seen.api_url,
                )
            )
    return Listing(items=members, warnings=warnings)
