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
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from taskgate.errors import BadRequestError, ConflictError, NotFoundError
from taskgate.store import accounts, cache, datasets, functions, model_names, trace_search, ui_sessions
from taskgate.store import analytics as usage_rows
from taskgate.store import examples as example_rows
from taskgate.store import generations as generation_rows
from taskgate.store import span_events as event_rows
from taskgate.store import spans as span_rows
from taskgate.store.base import (
    CustomModelRecord,
    EventFilter,
    ExampleRecord,
    FunctionDefinition,
    FunctionRecord,
    FunctionStats,
    GenerationRecord,
    ModelAliasRecord,
    ModelNameKind,
    ModelNameRecord,
    RevisionRecord,
    SpanEvent,
    SpanRecord,
    TraceFilter,
    TraceSummary,
    UsageQuery,
    UsageRow,
)
from taskgate.store.database import Database
from taskgate.store.keys import SqlKeyStore
from taskgate.store.knowledge import SqlKnowledgeStore
from taskgate.store.knowledge_files import SqlKnowledgeFileStore

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
        self.knowledge = SqlKnowledgeStore(database)
        self.knowledge_files = SqlKnowledgeFileStore(database)
        self.keys = SqlKeyStore(database)
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




    async def project_name(self, project_id: str) -> str | None:
        return await self.database.read(lambda c: accounts.project_name(c, project_id))

    # ---- UI sessions
    async def open_ui_session(self, session_id: str, key_digest: str, expires_at: datetime,
                              configured_project_id: str | None) -> str | None:
        try:
            return await self.database.write(lambda c: ui_sessions.open_session(
                c, session_id, key_digest, expires_at, configured_project_id, datetime.now(UTC)))
        except IntegrityError:  # the key was deleted meanwhile (the foreign key), or the id is taken
            return None

    async def ui_session_owner(self, session_id: str) -> tuple[str, bool] | None:
        return await self.database.read(lambda c: ui_sessions.session_owner(c, session_id, datetime.now(UTC)))

    async def close_ui_session(self, session_id: str) -> None:
        await self.database.write(lambda c: ui_sessions.close_session(c, session_id))

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
        def _delete(conn: Connection) -> bool:
            event_rows.delete_events_of_span(conn, project_id, span_id)
            return span_rows.delete_span(conn, project_id, span_id)

        return await self.database.write(_delete)

    async def list_traces(self, project_id: str, name: str | None = None, limit: int = 100,
                          offset: int = 0) -> tuple[list[TraceSummary], int]:
        limit, offset = _page(limit, offset)
        return await self.database.read(lambda c: span_rows.list_traces(c, project_id, name, limit, offset))

    async def get_trace(self, project_id: str, trace_id: str) -> list[SpanRecord]:
        return await self.database.read(lambda c: span_rows.get_trace(c, project_id, trace_id))

    async def find_traces(self, project_id: str, which: TraceFilter, before: datetime | None,
                          limit: int) -> tuple[list[TraceSummary], datetime | None]:
        return await self.database.read(lambda c: trace_search.find_traces(c, project_id, which, before, limit))

    async def delete_trace(self, project_id: str, trace_id: str) -> bool:
        def _delete(conn: Connection) -> bool:
            event_rows.delete_events_of_trace(conn, project_id, trace_id)
            return span_rows.delete_trace(conn, project_id, trace_id)

        return await self.database.write(_delete)

    # ---- result cache
    async def cache_get(self, project_id: str, key: str) -> dict[str, Any] | None:
        return await self.database.read(lambda c: cache.cache_get(c, project_id, key))

    async def cache_put(self, project_id: str, key: str, payload: dict[str, Any], ttl_seconds: int) -> None:
        """A ttl of 0 or less means "do not cache" (spec: `invocation.cache.ttl` 0 disables)."""
        if ttl_seconds <= 0:
            return
        sweep = next(self._cache_puts) % CACHE_SWEEP_EVERY == 0
        await self.database.write(lambda c: cache.cache_put(c, project_id, key, payload, ttl_seconds, sweep))

    async def ping(self) -> None:
        await self.database.read(lambda c: c.execute(sa.text("SELECT 1")))

    async def close(self) -> None:
        # Joining the pool's threads blocks: do it off the loop.
        await asyncio.to_thread(self.database.close)

    # ---- v2 functions by id, and their datasets (issue 15)
    async def get_function_by_id(self, project_id: str, function_id: str) -> FunctionRecord | None:
        return await self.database.read(lambda c: datasets.function_by_id(c, project_id, function_id))

    async def get_function_by_dataset(self, project_id: str, dataset_id: str) -> FunctionRecord | None:
        return await self.database.read(lambda c: datasets.function_by_dataset(c, project_id, dataset_id))

    async def list_functions_page(self, project_id: str, name: str | None, sort: str, limit: int,
                                  offset: int) -> tuple[list[FunctionRecord], int]:
        limit, offset = _page(limit, offset)
        return await self.database.read(
            lambda c: datasets.list_functions_page(c, project_id, name, sort, limit, offset))

    async def create_function(self, project_id: str, name: str, definition: FunctionDefinition,
                              few_shot_count: int) -> FunctionRecord:
        return await self._write_retrying(
            lambda c: datasets.create_function(c, project_id, name, definition, few_shot_count))

    async def update_function(self, project_id: str, function_id: str, name: str, definition: FunctionDefinition,
                              few_shot_count: int) -> FunctionRecord | None:
        return await self._write_retrying(
            lambda c: datasets.update_function(c, project_id, function_id, name, definition, few_shot_count))

    async def list_revisions_page(self, project_id: str, function_id: str, limit: int,
                                  offset: int) -> tuple[list[RevisionRecord], int] | None:
        limit, offset = _page(limit, offset)
        return await self.database.read(lambda c: datasets.revisions_page(c, project_id, function_id, limit, offset))

    async def get_revision_by_id(self, project_id: str, function_id: str, revision_id: str) -> RevisionRecord | None:
        return await self.database.read(lambda c: datasets.revision_by_id(c, project_id, function_id, revision_id))

    async def get_example(self, project_id: str, function_id: str, example_id: str) -> ExampleRecord | None:
        return await self.database.read(lambda c: datasets.get_entry(c, project_id, function_id, example_id))

    async def count_examples(self, project_id: str, function_id: str) -> int:
        return await self.database.read(lambda c: datasets.count_entries(c, project_id, function_id))

    async def update_example(self, project_id: str, function_id: str, example_id: str,
                             changes: dict[str, Any]) -> ExampleRecord | None:
        return await self.database.write(
            lambda c: datasets.update_entry(c, project_id, function_id, example_id, changes))

    async def set_example_embeddings(self, project_id: str, vectors: list[tuple[str, list[float]]],
                                     model: str) -> None:
        await self.database.write(lambda c: datasets.set_embeddings(c, project_id, vectors, model))

    async def embedded_examples(self, project_id: str, function_id: str, model: str,
                                limit: int) -> list[tuple[str, list[float]]]:
        return await self.database.read(lambda c: datasets.embedded_entries(c, project_id, function_id, model, limit))

    async def examples_by_ids(self, project_id: str, function_id: str, ids: list[str]) -> list[ExampleRecord]:
        return await self.database.read(lambda c: datasets.entries_by_ids(c, project_id, function_id, ids))
    # ---- model names: custom models and aliases (store/model_names.py)
    async def create_model_name(self, kind: ModelNameKind, project_id: str,
                                values: dict[str, Any]) -> ModelNameRecord:
        return await self._write_named(lambda c: model_names.create(c, kind, project_id, values))

    async def get_model_name(self, kind: ModelNameKind, project_id: str, *, id: str | None = None,
                             name: str | None = None) -> ModelNameRecord | None:
        return await self.database.read(lambda c: model_names.get(c, kind, project_id, id=id, name=name))

    async def list_model_names(self, kind: ModelNameKind, project_id: str, limit: int,
                               offset: int) -> tuple[list[ModelNameRecord], int]:
        limit, offset = _page(limit, offset)
        return await self.database.read(lambda c: model_names.list_page(c, kind, project_id, limit, offset))

    async def update_model_name(self, kind: ModelNameKind, project_id: str, id: str,
                                changes: dict[str, Any]) -> ModelNameRecord | None:
        return await self._write_named(lambda c: model_names.update(c, kind, project_id, id, changes))

    async def delete_model_name(self, kind: ModelNameKind, project_id: str, id: str) -> bool:
        return await self.database.write(lambda c: model_names.delete(c, kind, project_id, id))

    async def all_model_names(self, project_id: str) -> tuple[list[CustomModelRecord], list[ModelAliasRecord]]:
        return await self.database.read(lambda c: model_names.everything(c, project_id))

    async def _write_named(self, fn: Callable[[Connection], T]) -> T:
        """A write that takes a name: losing a race for it to another writer is the same 409 as
        finding it taken."""
        try:
            return await self.database.write(fn)
        except IntegrityError as exc:
            raise ConflictError("a custom model or model alias with this name already exists") from exc
    # ---- span events
    async def add_span_event(self, project_id: str, event: SpanEvent, *, replace: bool = False) -> SpanEvent:
        await self.database.write(lambda c: event_rows.add_event(c, project_id, event, replace))
        return event

    async def list_span_events(self, project_id: str, which: EventFilter, limit: int | None = 100,
                               offset: int = 0) -> tuple[list[SpanEvent], int]:
        if limit is not None:
            limit, offset = _page(limit, offset)
        return await self.database.read(lambda c: event_rows.list_events(c, project_id, which, limit, offset))

    async def get_span_event(self, project_id: str, span_id: str, origin: str, event_id: str) -> SpanEvent | None:
        return await self.database.read(lambda c: event_rows.get_event(c, project_id, span_id, origin, event_id))

    async def update_span_event(self, project_id: str, span_id: str, origin: str, event_id: str,
                                data: dict[str, Any]) -> SpanEvent | None:
        return await self.database.write(
            lambda c: event_rows.update_event(c, project_id, span_id, origin, event_id, data))

    async def delete_span_event(self, project_id: str, span_id: str, origin: str, event_id: str) -> bool:
        return await self.database.write(lambda c: event_rows.delete_event(c, project_id, span_id, origin, event_id))

    async def trace_exists(self, project_id: str, trace_id: str) -> bool:
        return await self.database.read(lambda c: span_rows.trace_exists(c, project_id, trace_id))
    # ---- analytics
    async def function_stats(self, project_id: str, names: list[str], since: datetime) -> dict[str, FunctionStats]:
        return await self.database.read(lambda c: usage_rows.function_stats(c, project_id, names, since))

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
