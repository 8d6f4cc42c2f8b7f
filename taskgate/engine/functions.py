"""Keeping the stored function in step with what callers send, without a database trip per call.

Each process remembers the definition it last stored per function; only a changed definition
(new instructions, schemas, model or configuration) goes to the store, which adds a revision.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, replace

from taskgate.engine.schemas import canonical
from taskgate.engine.task import DEFAULT_MAX_ATTEMPTS, Task
from taskgate.store.base import FunctionDefinition, FunctionRecord, Store


def definition_of(task: Task) -> FunctionDefinition:
    return FunctionDefinition(
        instructions=task.instructions,
        input_schema=task.input_schema,
        output_schema=task.output_schema,
        model=[{"name": m.name, "options": m.options} for m in task.models] or None,
        # An unset max_attempts is stored as the spec's default, as it always was, so that functions
        # stored before it could be unset do not get a new revision for it.
        configuration=asdict(replace(task.config, max_attempts=task.config.max_attempts or DEFAULT_MAX_ATTEMPTS)),
    )


def fingerprint(task: Task) -> bytes:
    """The versioned fields of a task as bytes; cheap, because it runs on every call."""
    config = task.config
    return canonical((
        task.instructions,
        task.input_schema,
        task.output_schema,
        [(m.name, m.options) for m in task.models],
        (config.cache_ttl, config.max_attempts, config.few_shot_count, config.validate_input),
    ))


class FunctionBook:
    """What this process knows is trusted for `recheck_s` seconds; then the next call compares with
    the store again, so a change made through another replica is noticed."""

    def __init__(self, store: Store, recheck_s: float = 5.0) -> None:
        self._store = store
        self._recheck_s = recheck_s
        self._known: dict[tuple[str, str], tuple[bytes, FunctionRecord, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._hits: dict[tuple[str, str], int] = {}

    async def ensure(self, task: Task) -> tuple[FunctionRecord, bool]:
        """The function's record, and whether its current revision already existed (v3 `script_cached`)."""
        key = (task.project_id, task.function_name)
        self._hits[key] = self._hits.get(key, 0) + 1
        current = fingerprint(task)
        if (known := self._fresh(key, current)) is not None:
            return known, True
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if (known := self._fresh(key, current)) is not None:
                return known, True
            before = await self._store.get_function(task.project_id, task.function_name)
            record = await self._store.upsert_function(task.project_id, task.function_name, definition_of(task))
            self._known[key] = (current, record, time.monotonic() + self._recheck_s)
            existed = before is not None and before.revision_id == record.revision_id
            return record, existed

    def _fresh(self, key: tuple[str, str], current: bytes) -> FunctionRecord | None:
        known = self._known.get(key)
        if known is not None and known[0] == current and known[2] > time.monotonic():
            return known[1]
        return None

    async def current(self, project_id: str, name: str) -> FunctionRecord | None:
        """The stored function as this process last saw it, asking the store when it has not or when
        that is older than `recheck_s` (another replica may have changed it meanwhile)."""
        known = self._known.get((project_id, name))
        if known is not None and known[2] > time.monotonic():
            return known[1]
        return await self._store.get_function(project_id, name)

    def forget(self, project_id: str, name: str) -> None:
        """Called when a function is changed through its own API, so the next call re-checks the store."""
        self._known.pop((project_id, name), None)

    async def flush_hits(self) -> None:
        """Add the calls counted since the last flush to each function's `hit_count`, one write per function."""
        hits, self._hits = self._hits, {}
        for (project_id, name), count in hits.items():
            await self._store.record_function_hits(project_id, name, count)
