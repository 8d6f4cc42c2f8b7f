"""The `invocation.cache.ttl` result cache: a hit makes no provider call and costs nothing."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from taskgate.engine.task import Result
from taskgate.providers.base import ToolCall, Usage
from taskgate.store.base import Store

if TYPE_CHECKING:
    from taskgate.engine.engine import Call

log = logging.getLogger("taskgate.cache")


class ResultCache:
    """A failing cache read is a miss and a failing write is skipped: the cache must never fail a call."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, call: Call) -> Result | None:
        if call.cache_key is None:
            return None
        try:
            stored = await self._store.cache_get(call.task.project_id, call.cache_key)
        except Exception:
            log.exception("cache read failed; treating it as a miss")
            return None
        if stored is None:
            return None
        return Result(
            span_id=call.span_id,
            trace_id=call.trace_id,
            text=stored.get("text"),
            payload=stored.get("payload"),
            tool_calls=[ToolCall(**t) for t in stored.get("tool_calls", [])],
            finish_reason=stored.get("finish_reason", "stop"),
            usage=Usage(),
            cost=0.0,
            model=stored.get("model", ""),
            attempts=0,
            cached=True,
        )

    async def put(self, call: Call, result: Result) -> None:
        if call.cache_key is None:
            return
        payload: dict[str, Any] = {
            "text": result.text,
            "payload": result.payload,
            "tool_calls": [asdict(t) for t in result.tool_calls],
            "finish_reason": result.finish_reason,
            "model": result.model,
        }
        try:
            await self._store.cache_put(call.task.project_id, call.cache_key, payload, call.task.config.cache_ttl)
        except Exception:
            log.exception("cache write failed; the result is returned uncached")
