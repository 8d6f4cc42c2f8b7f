"""The `invocation.cache.ttl` result cache: a hit makes no provider call and costs nothing.

It knows results and keys, not calls: the engine works out the key (`engine._cache_key`) and gives
a hit its own span.

The structured answer is stored as its JSON text, not as a JSON value: a hit must give the fields
in the order the model wrote them (the schema's order), and Postgres `jsonb` reorders object keys.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Protocol

import orjson

from taskgate.engine.task import Result
from taskgate.providers.base import GeneratedImage, ToolCall, Usage

log = logging.getLogger("taskgate.cache")


class CacheStore(Protocol):
    """Where entries live: the store's cache table, or Redis shared by replicas (`replicas.shared_cache`)."""

    async def cache_get(self, project_id: str, key: str) -> dict[str, Any] | None: ...

    async def cache_put(self, project_id: str, key: str, payload: dict[str, Any], ttl_seconds: int) -> None: ...


class ResultCache:
    """A failing cache read is a miss and a failing write is skipped: the cache must never fail a call."""

    def __init__(self, store: CacheStore) -> None:
        self._store = store

    async def get(self, project_id: str, key: str | None) -> Result | None:
        """The result stored under `key` (None: the call is not cached), without span or trace ids."""
        if key is None:
            return None
        try:
            stored = await self._store.cache_get(project_id, key)
        except Exception:
            log.exception("cache read failed; treating it as a miss")
            return None
        if stored is None or not isinstance(stored.get("payload_json"), str):
            return None  # absent, expired, or written in another layout: a miss
        return Result(
            span_id="",
            trace_id="",
            text=stored.get("text"),
            payload=orjson.loads(stored["payload_json"]),
            tool_calls=[ToolCall(**t) for t in stored.get("tool_calls", [])],
            finish_reason=stored.get("finish_reason", "stop"),
            stop_sequence=stored.get("stop_sequence"),
            usage=Usage(),
            cost=0.0,
            model=stored.get("model", ""),
            attempts=0,
            cached=True,
            images=[GeneratedImage(**image) for image in stored.get("images", [])],
        )

    async def put(self, project_id: str, key: str | None, result: Result, ttl_s: int) -> None:
        if key is None:
            return
        payload: dict[str, Any] = {
            "text": result.text,
            "payload_json": orjson.dumps(result.payload, option=orjson.OPT_NON_STR_KEYS).decode(),
            "tool_calls": [asdict(t) for t in result.tool_calls],
            "finish_reason": result.finish_reason,
            "stop_sequence": result.stop_sequence,
            "model": result.model,
        }
        if result.images:
            payload["images"] = [asdict(image) for image in result.images]
        try:
            await self._store.cache_put(project_id, key, payload, ttl_s)
        except Exception:
            log.exception("cache write failed; the result is returned uncached")
