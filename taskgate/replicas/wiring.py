"""What a process shares with its replicas: built from the settings once, in `app.create_app`.

With `TASKGATE_REDIS_URL`, one `RedisLink` (the process's only Redis connection pool, for anyone who
needs Redis: `Replication.link`), the shared response cache, change notices heard over pub/sub and
the span mirror. Without it, the single-node stand-ins: the store's cache table, notices that
reach no one (services keep their polling windows), and no mirror.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskgate.config import Settings
from taskgate.replicas.notices import ChangeNotices
from taskgate.replicas.redis_link import RedisLink
from taskgate.replicas.shared_cache import SharedCache
from taskgate.replicas.span_mirror import SpanMirror, mirror_ttl
from taskgate.store.base import Store


@dataclass(slots=True)
class Replication:
    link: RedisLink | None
    notices: ChangeNotices
    cache: SharedCache | Store  # the response cache's entries: Redis, or the store's cache table
    span_mirror: SpanMirror | None

    @classmethod
    def single_node(cls, store: Store) -> Replication:
        return cls(None, ChangeNotices(), store, None)

    @classmethod
    def over_redis(cls, store: Store, url: str, prefix: str, span_flush_interval_s: float) -> Replication:
        link = RedisLink(url, prefix)
        return cls(link, ChangeNotices(link), SharedCache(link, store),
                   SpanMirror(link, mirror_ttl(span_flush_interval_s)))

    async def start(self) -> None:
        """Probe Redis (an unreachable one is logged and retried, never fatal) and start hearing notices."""
        if self.link is not None:
            await self.link.ping()
        await self.notices.start()

    async def redis_state(self) -> str:
        """For `/ready`: `ok` when Redis answers a ping now, else `down` (not asked again in a cooldown)."""
        if self.link is None or not self.link.usable:
            return "down"
        return "ok" if await self.link.ping() else "down"

    async def close(self) -> None:
        await self.notices.close()
        if self.span_mirror is not None:
            await self.span_mirror.close()
        if self.link is not None:
            await self.link.aclose()


def replication_for(store: Store, settings: Settings) -> Replication:
    if settings.redis_url is None:
        return Replication.single_node(store)
    return Replication.over_redis(store, settings.redis_url, settings.redis_prefix, settings.span_flush_interval_s)
