"""`SqlStore`: the Store protocol over SQLAlchemy Core, for SQLite and Postgres.

Every method runs one transaction in the database's thread pool, so the event loop never waits
on the driver. Writes that can race on a unique key (a new project, a new function or revision)
are retried in a fresh transaction: the loser then sees the winner's row.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from taskgate.errors import BadRequestError, ConflictError, NotFoundError
from taskgate.store import accounts, cache, functions
from taskgate.store import analytics as usage_rows
from taskgate.store import examples as example_rows
from taskgate.store import generations as generation_rows
from taskgate.store import spans as span_rows
from taskgate.store.base import (
    ExampleRecord,
    FunctionDefinition,
    FunctionRecord,
    GenerationRecord,
    RevisionRecord,
    SpanRecord,
    TraceSummary,
    UsageQuery,
    UsageRow,
)
from taskgate.store.database import Database

T = TypeVar("T")
log = logging.getLogger("taskgate.spans")
RACE_RETRIES = 5
CACHE_SWEEP_EVERY = 256  # puts between sweeps of expired cache rows
MAX_PAGE = 1000
ENCODE_SLICE = 4  # spans encoded between two turns of the event loop


def _page(limit: int, offset: int) -> tuple[int, int]:
    if limit < 0 or offset < 0:
        raise BadRequestError(f"limit and offset must not be negative (got limit={limit}, offset={offset})")
    return min(limit, MAX_PAGE), offset


class SqlStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._cache_puts = itertools.count(1)

    async def _write_retrying(self, fn: Callable[[Connection], T]) -> T:
        for _ in range(RACE_RETRIES - 1):
            try:
                return await self.database.write(fn)
            except IntegrityError:
                continue
        return await self.database.write(fn)

    # ---- projects and keys
    async def ensure_project(self, name: str) -> str:
        if not name:
            raise BadRequestError("a project name must not be empty")
        return await self._write_retrying(lambda c: accounts.ensure_project(c, name))

    async def create_api_key(self, project_name: str) -> str:
        if not project_name:
            raise BadRequestError("a project name must not be empty")
        return await self._write_retrying(lambda c: accounts.create_api_key(c, project_name))

    async def project_for_key_hash(self, key_hash: str) -> str | None:
        return await self.database.read(lambda c: accounts.project_for_key_hash(c, key_hash))

    # ---- functions and revisions
    async def upsert_function(self, project_id: str, name: str, definition: FunctionDefinition) -> FunctionRecord:
        if not name:
            raise BadRequestError("a function name must not be empty")
        return await self._write_retrying(lambda c: functions.upsert_function(c, project_id, name, definition))

    async def get_function(self, project_id: str, name: str) -> FunctionRecord | None:
        return await self.database.read(lambda c: functions.get_function(c, project_id, name))

    async def list_functions(self, project_id: str, limit: int = 100, offset: int = 0) -> list[FunctionRecord]:
        limit, offset = _page(limit, offset)
        return await self.database.read(lambda c: functions.list_functions(c, project_id, limit, offset))

    async def delete_function(self, project_id: str, name: str) -> bool:
        return await self.database.write(lambda c: functions.delete_function(c, project_id, name))

    async def list_revisions(self, project_id: str, name: str) -> list[RevisionRecord]:
        return await self.database.read(lambda c: functions.list_revisions(c, project_id, name))

    async def get_revision(self, project_id: str, name: str, number: int) -> RevisionRecord | None:
        return await self.database.read(lambda c: functions.get_revision(c, project_id, name, number))

    async def revert_function(self, project_id: str, name: str, number: int) -> FunctionRecord | None:
        return await self._write_retrying(lambda c: functions.revert_function(c, project_id, name, number))

    async def record_function_hits(self, project_id: str, name: str, count: int) -> None:
        await self.database.write(lambda c: functions.record_hits(c, project_id, name, count))

    async def set_few_shot_count(self, project_id: str, name: str, count: int) -> None:
        if count < 0:
            raise BadRequestError(f"few-shot count must not be negative (got {count})")
        await self.database.write(lambda c: functions.set_few_shot_count(c, project_id, name, count))

    # ---- examples
    async def add_examples(self, project_id: str, function_id: str,
                           examples: list[ExampleRecord]) -> list[ExampleRecord]:
        def _add(conn: Connection) -> list[ExampleRecord]:
            if not functions.function_in_project(conn, project_id, function_id):
                raise NotFoundError(f"function {function_id} not found")
            return example_rows.add_examples(conn, project_id, function_id, examples)

        try:
            return await self.database.write(_add)
        except IntegrityError as exc:
            raise ConflictError("an example with one of these ids already exists") from exc

    async def list_examples(self, project_id: str, function_id: str, limit: int = 50, offset: int = 0,
                            tag: str | None = None) -> list[ExampleRecord]:
        limit, offset = _page(limit, offset)
        return await self.database.read(
            lambda c: example_rows.list_examples(c, project_id, function_id, limit, offset, tag))

    async def delete_example(self, project_id: str, function_id: str, example_id: str) -> bool:
        return await self.database.write(lambda c: example_rows.delete_example(c, project_id, function_id, example_id))

    async def search_examples(self, project_id: str, function_id: str, query: str, limit: int) -> list[ExampleRecord]:
        limit, _ = _page(limit, 0)
        return await self.database.read(
            lambda c: example_rows.search_examples(c, project_id, function_id, query, limit))

    # ---- spans and traces
    async def write_spans(self, spans: list[SpanRecord], *, background: bool = False) -> None:
        """Encode on the event loop in small slices, then write in the pool (`background`: on its
        low-priority thread).

        Encoding is most of a batch's CPU. Done in the pool thread, it would hold the GIL in
        bursts that stall every request arriving meanwhile; done here, requests run between slices.
        """
        latest = span_rows.latest_versions(spans)
        if self.database.dialect == "postgresql":
            pg_rows = await _encoded(latest, span_rows.postgres_row)
            if pg_rows:
                await self.database.write(lambda c: span_rows.write_postgres_rows(c, pg_rows), background=background)
        else:
            rows = await _encoded(latest, span_rows.sqlite_row)
            if rows:
                await self.database.write(lambda c: span_rows.write_sqlite_rows(c, rows), background=background)

    async def get_span(self, project_id: str, span_id: str) -> SpanRecord | None:
        return await self.database.read(lambda c: span_rows.get_span(c, project_id, span_id))

    async def delete_span(self, project_id: str, span_id: str) -> bool:
        return await self.database.write(lambda c: span_rows.delete_span(c, project_id, span_id))

    async def list_traces(self, project_id: str, name: str | None = None, limit: int = 100,
                          offset: int = 0) -> tuple[list[TraceSummary], int]:
        limit, offset = _page(limit, offset)
        return await self.database.read(lambda c: span_rows.list_traces(c, project_id, name, limit, offset))

    async def get_trace(self, project_id: str, trace_id: str) -> list[SpanRecord]:
        return await self.database.read(lambda c: span_rows.get_trace(c, project_id, trace_id))

    async def delete_trace(self, project_id: str, trace_id: str) -> bool:
        return await self.database.write(lambda c: span_rows.delete_trace(c, project_id, trace_id))

    # ---- result cache
    async def cache_get(self, project_id: str, key: str) -> dict[str, Any] | None:
        return await self.database.read(lambda c: cache.cache_get(c, project_id, key))

    async def cache_put(self, project_id: str, key: str, payload: dict[str, Any], ttl_seconds: int) -> None:
        """A ttl of 0 or less means "do not cache" (spec: `invocation.cache.ttl` 0 disables)."""
        if ttl_seconds <= 0:
            return
        sweep = next(self._cache_puts) % CACHE_SWEEP_EVERY == 0
        await self.database.write(lambda c: cache.cache_put(c, project_id, key, payload, ttl_seconds, sweep))

    async def close(self) -> None:
        # Joining the pool's threads blocks: do it off the loop.
        await asyncio.to_thread(self.database.close)

    # ---- analytics
    async def usage_report(self, project_id: str, query: UsageQuery) -> list[UsageRow]:
        return await self.database.read(lambda c: usage_rows.usage_report(c, project_id, query))

    # ---- generations
    async def write_generations(self, records: list[GenerationRecord]) -> None:
        await self.database.write(lambda c: generation_rows.write_generations(c, records), background=True)

    async def list_generations(self, project_id: str, query: str | None, limit: int,
                               offset: int) -> tuple[list[GenerationRecord], int]:
        limit, offset = _page(limit, offset)
        return await self.database.read(
            lambda c: generation_rows.list_generations(c, project_id, query, limit, offset))

    async def get_generation(self, project_id: str, generation_id: str) -> GenerationRecord | None:
        return await self.database.read(lambda c: generation_rows.get_generation(c, project_id, generation_id))

    async def delete_generation(self, project_id: str, generation_id: str) -> bool:
        return await self.database.write(lambda c: generation_rows.delete_generation(c, project_id, generation_id))


async def _encoded(spans: list[SpanRecord], encode: Callable[[SpanRecord], T]) -> list[T]:
    """Each span encoded, ENCODE_SLICE at a time between turns of the event loop; a span that
    cannot be encoded is logged and left out, so one odd value does not sink its whole batch."""
    rows = []
    for count, span in enumerate(spans, start=1):
        try:
            rows.append(encode(span))
        except (TypeError, ValueError, OverflowError):
            log.exception("span %s cannot be stored and is dropped", span.id)
        if count % ENCODE_SLICE == 0:
            await asyncio.sleep(0)
    return rows
