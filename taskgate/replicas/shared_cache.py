"""The response cache in Redis: one cache for every replica, each entry expiring by Redis's own TTL.

It stores what the store's cache table stores (`ResultCache` decides the payload) under
`<prefix>cache:<project>:<key>`, with `SET ... EX ttl`, so nothing has to sweep expired rows.
While Redis is down (`RedisLink.usable` is false) reads and writes go to the store's cache table
instead, which replicas on one Postgres share too, so a Redis outage costs speed, not hits that
the store holds; entries written during the outage are not copied into Redis afterwards (they
are answered again, once, and cached in Redis then).
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as redis

from taskgate.replicas.redis_link import RedisLink
from taskgate.store.base import Store


class SharedCache:
    """`cache_get` / `cache_put` as the store has them, kept in Redis."""

    def __init__(self, link: RedisLink, fallback: Store) -> None:
        self._link = link
        self._fallback = fallback

    async def cache_get(self, project_id: str, key: str) -> dict[str, Any] | None:
        if not self._link.usable:
            return await self._fallback.cache_get(project_id, key)
        try:
            raw = await self._link.client.get(self._link.key("cache", project_id, key))
        except (redis.RedisError, OSError) as exc:
            self._link.failed("cache read", exc)
            return await self._fallback.cache_get(project_id, key)
        self._link.succeeded()
        if raw is None:
            return None
        payload = orjson.loads(raw)
        return payload if isinstance(payload, dict) else None

    async def cache_put(self, project_id: str, key: str, payload: dict[str, Any], ttl_seconds: int) -> None:
        """A ttl of 0 or less means "do not cache", as in the store."""
        if ttl_seconds <= 0:
            return
        if not self._link.usable:
            await self._fallback.cache_put(project_id, key, payload, ttl_seconds)
            return
        try:
            await self._link.client.set(self._link.key("cache", project_id, key), orjson.dumps(payload),
                                        ex=ttl_seconds)
        except (redis.RedisError, OSError) as exc:
            self._link.failed("cache write", exc)
            await self._fallback.cache_put(project_id, key, payload, ttl_seconds)
            return
        self._link.succeeded()
