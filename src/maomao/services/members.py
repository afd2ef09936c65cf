"""Who is in the federation: known operators (index) and who is online (presence)."""

from __future__ import annotations

from maomao.config import Config
from maomao.etcd import Store, open_store
from maomao.models import MemberInfo, Presence


async def list_members(config: Config, store: Store | None = None) -> list[MemberInfo]:
    """Two range reads, whose cost grows with the number of operators only."""
    keys = config.keys
    if store is None:
        async with open_store(config) as own:
            return await list_members(config, own)
    known = await store.range(keys.index_operators, keys_only=True)
    online = await store.range(keys.index_presences)
    present: dict[str, Presence] = {}
    for kv in online:
        try:
            p = Presence.from_json(kv.value)
        except (ValueError, TypeError):
            continue
        present[kv.key.rsplit("/", 1)[-1]] = p
    names = {kv.key.rsplit("/", 1)[-1] for kv in known} | set(present)
    members = []
    for name in sorted(names):
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
    return members
