"""Spans and the traces they form. Blocking calls on one connection.

A trace's summary comes from its earliest root span (one without a parent). Listings page the
`trace_roots` table that triggers keep (see `list_traces`), then read only the page's spans.
"""

from __future__ import annotations

import functools
import os
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskgate.store.base import SpanRecord, TraceSummary
from taskgate.store.codec import json_dumps, pg_json_dumps, span_from_row, total_tokens
from taskgate.store.tables import spans, trace_counts, trace_names, trace_roots

_COLUMNS = tuple(column.name for column in spans.columns)
_KEYS = ("project_id", "id")


_NAMES = ", ".join(f'"{name}"' for name in _COLUMNS)
_ON_CONFLICT = (f"ON CONFLICT ({', '.join(_KEYS)}) DO UPDATE SET "
                + ", ".join(f'"{name}" = excluded."{name}"' for name in _COLUMNS if name not in _KEYS))
_SQL_INTEGER = range(-(2**63), 2**63)
_POSTGRES_ROWS_PER_STATEMENT = 10  # binding a statement holds the GIL: keep each bind short


@functools.cache
def _postgres_upsert_sql(rows: int) -> str:
    """One INSERT of `rows` rows: a single statement, so the driver releases the GIL once per batch
    rather than once per row (per-row handoffs stall the event loop under load)."""
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    return f"INSERT INTO spans ({_NAMES}) VALUES {', '.join([row] * rows)} {_ON_CONFLICT}"


# SQLite gets a batch as JSON arrays of rows, each statement's bound as one text parameter and
# unpacked by SQLite itself (`json_extract` gives each element as the SQL value it holds). SQLite
# runs a statement with the GIL released, so the writer thread holds the GIL for one bind per
# statement, not one per value. A statement of 20 rows runs about 1 ms; between two, the thread
# gives way to any other waiting for the core (`os.sched_yield`: the GIL is already free there, it
# is the core the loop may be waiting for): 600 rows in one statement kept the event loop waiting
# up to a whole scheduler slice. bench.span_writes (a) measures the loop's wake-up during writes
# against binding every value (rows made on the loop in both): median over 6 runs p90 0.84x, p99
# 0.69x (ranges 0.52-1.01x and 0.53-1.26x: the host is noisy). The price is writer-thread CPU:
# SQLite parses each row's JSON again for each column, about 1.6x the binding's (26-30 ms against
# 17 ms for 600 spans), on the low-priority thread.
_SQLITE_ROWS_PER_STATEMENT = 20
_SQLITE_UPSERT = (f"INSERT INTO spans ({_NAMES}) SELECT "
                  + ", ".join(f"json_extract(value, '$[{index}]')" for index in range(len(_COLUMNS)))
                  + f" FROM json_each(?) WHERE true {_ON_CONFLICT}")


def latest_versions(records: list[SpanRecord]) -> list[SpanRecord]:
    """Of two records with the same id in one batch the later wins (Postgres refuses to touch one
    row twice in a statement, so they are collapsed first)."""
    return list({(span.project_id, span.id): span for span in records}.values())


def check_storable(span: SpanRecord) -> None:
    """Encode `span` as a write does, raising what that write would: OverflowError for a number or
    time a column cannot hold, TypeError (orjson) for JSON it cannot encode. For callers that must
    know before they answer that a span will be stored (both stores fail alike on these)."""
    sqlite_row(span)


def sqlite_row(span: SpanRecord) -> bytes:
    """The span as a JSON array of its column values, for `write_sqlite_rows`: pure CPU, so it runs
    on the event loop. JSON columns are JSON text inside it, stored as exactly that text."""
    return orjson.dumps(_column_values(span, postgres=False))


def write_sqlite_rows(conn: Connection, rows: list[bytes]) -> None:
    """Upsert rows made by `sqlite_row`, 20 to a statement of one parameter.

    Values land exactly as the typed columns store them, so reads through SQLAlchemy see no
    difference.
    """
    for start in range(0, len(rows), _SQLITE_ROWS_PER_STATEMENT):
        if start:
            os.sched_yield()
        chunk = rows[start : start + _SQLITE_ROWS_PER_STATEMENT]
        conn.exec_driver_sql(_SQLITE_UPSERT, ((b"[" + b",".join(chunk) + b"]").decode(),))


def postgres_row(span: SpanRecord) -> tuple[Any, ...]:
    """The span as driver parameters, in column order, for `write_postgres_rows`: pure CPU."""
    return _column_values(span, postgres=True)


def write_postgres_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Upsert rows made by `postgres_row`, a few at a time, skipping SQLAlchemy's per-row bind
    processing. Between statements the thread yields, so a batch does not occupy the CPU the event
    loop needs in one burst."""
    for start in range(0, len(rows), _POSTGRES_ROWS_PER_STATEMENT):
        if start:
            time.sleep(0)
        chunk = rows[start : start + _POSTGRES_ROWS_PER_STATEMENT]
        conn.exec_driver_sql(_postgres_upsert_sql(len(chunk)), tuple(value for row in chunk for value in row))


def _column_values(span: SpanRecord, postgres: bool) -> tuple[Any, ...]:
    """The span's values in _COLUMNS order (checked below, at import), written out column by column:
    a loop over the columns with a type test each was the costliest part of a span's write. JSON
    columns are JSON text; times are UTC (SQLite: the "YYYY-MM-DD HH:MM:SS.ffffff" text SQLAlchemy's
    DATETIME stores and parses); a stray NUL in a text is dropped (Postgres text refuses it, and
    SQLite's json_extract ends the text at one); an integer must fit 64 bits."""
    dumps = pg_json_dumps if postgres else json_dumps
    usage = dict(span.usage or {})
    total = total_tokens(usage)
    for name, number in (("attempts", span.attempts), ("total_tokens", total), ("cost", span.cost)):
        if isinstance(number, int) and number not in _SQL_INTEGER:
            raise OverflowError(f"{name} = {number} does not fit a 64-bit SQL integer")
    return (
        _text(span.project_id), _text(span.id), _text(span.trace_id), _text(span.parent_id), _text(span.name),
        _text(span.type), _time(span.start_time, postgres), _time(span.end_time, postgres),
        None if span.input is None else dumps(span.input), None if span.output is None else dumps(span.output),
        _text(span.error), _text(span.status), dumps(list(span.model_chain or [])), _text(span.model_used),
        dumps(list(span.models_failed or [])), span.attempts, dumps(usage), total, span.cost,
        dumps(dict(span.tags or {})), dumps(dict(span.meta or {})), _text(span.function_name),
    )


_WRITTEN = ("project_id", "id", "trace_id", "parent_id", "name", "type", "start_time", "end_time", "input", "output",
            "error", "status", "model_chain", "model_used", "models_failed", "attempts", "usage", "total_tokens",
            "cost", "tags", "meta", "function_name")
if _WRITTEN != _COLUMNS:  # a column added to the table must be added to _column_values too
    raise ImportError(f"_column_values writes {_WRITTEN}, the spans table has {_COLUMNS}")


def _text(value: Any) -> Any:
    return value.replace("\x00", "") if isinstance(value, str) else value


def _time(value: datetime | None, postgres: bool) -> Any:
    if value is None:
        return None
    return _utc(value) if postgres else _utc(value).isoformat(" ", "microseconds")[:26]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """Naive times are taken as UTC, as the UTCDateTime column type does."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def get_span(conn: Connection, project_id: str, span_id: str) -> SpanRecord | None:
    query = sa.select(spans).where(spans.c.project_id == project_id, spans.c.id == span_id)
    row = conn.execute(query).mappings().first()
    return span_from_row(row) if row else None


def delete_span(conn: Connection, project_id: str, span_id: str) -> bool:
    result = conn.execute(spans.delete().where(spans.c.project_id == project_id, spans.c.id == span_id))
    return result.rowcount > 0


def get_trace(conn: Connection, project_id: str, trace_id: str) -> list[SpanRecord]:
    """The trace's spans by start (those without one last), then id. Sorted here, not in SQL: with
    an ORDER BY on start_time, SQLite (holding no statistics) walks the project's start-time index
    rather than the trace's, reading every span of the project (30 ms at 200,000 spans, not 1)."""
    query = sa.select(spans).where(spans.c.project_id == project_id, spans.c.trace_id == trace_id)
    found = [span_from_row(row) for row in conn.execute(query).mappings()]
    return sorted(found, key=lambda span: (span.start_time is None, span.start_time or _EPOCH, span.id))


def delete_trace(conn: Connection, project_id: str, trace_id: str) -> bool:
    result = conn.execute(spans.delete().where(spans.c.project_id == project_id, spans.c.trace_id == trace_id))
    return result.rowcount > 0


def trace_exists(conn: Connection, project_id: str, trace_id: str) -> bool:
    query = sa.select(spans.c.id).where(spans.c.project_id == project_id, spans.c.trace_id == trace_id).limit(1)
    return conn.execute(query).first() is not None


def list_traces(conn: Connection, project_id: str, name: str | None, limit: int,
                offset: int) -> tuple[list[TraceSummary], int]:
    """Newest first (by the start of the trace's earliest root span); `name` is a case-insensitive
    substring of the trace's name (its earliest root's, the name listed). Returns one page and the
    total count for the same filter.

    A page is read from `trace_roots` (one row per trace with a root, kept by triggers), then only
    its own traces' spans are read: never all spans. Without a filter the total is the one row of
    `trace_counts`. With one, the substring is matched against the project's distinct names in
    `trace_names` (also trigger-kept), whose counts add up to the total; see `_named_page`. A trace
    whose roots are all gone (deleted) is not listed, though it can still be read by its id.
    """
    conditions = [trace_roots.c.project_id == project_id]
    if name:
        matching = (trace_names.c.project_id == project_id, trace_names.c.traces > 0,
                    trace_names.c.name.icontains(name, autoescape=True))
        total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(trace_names.c.traces), 0))
                             .where(*matching)).scalar_one()
        if not total:
            return [], 0
        names = sa.select(trace_names.c.name).where(*matching)  # a subquery: the names may be many
        conditions.append(_named_page(conn, project_id, names, total, limit + offset))
    else:
        counted = sa.select(trace_counts.c.traces).where(trace_counts.c.project_id == project_id)
        total = conn.execute(counted).scalar_one_or_none() or 0
    page = (sa.select(trace_roots.c.trace_id, trace_roots.c.root_id).where(*conditions)
            .order_by(trace_roots.c.start_time.desc(), trace_roots.c.trace_id.desc()).limit(limit).offset(offset))
    root_ids: dict[str, str] = {trace_id: root_id for trace_id, root_id in conn.execute(page)}
    if not root_ids:
        return [], total
    roots = {row["id"]: row for row in conn.execute(
        sa.select(spans.c.id, spans.c.name, spans.c.status, spans.c.input, spans.c.output)
        .where(spans.c.project_id == project_id, spans.c.id.in_(list(root_ids.values())))).mappings()}
    sums = {row["trace_id"]: row for row in conn.execute(
        sa.select(spans.c.trace_id, sa.func.count().label("span_count"),
                  sa.func.min(spans.c.start_time).label("start_time"),
                  sa.func.max(spans.c.end_time).label("end_time"),
                  sa.func.sum(spans.c.total_tokens).label("total_tokens"))
        .where(spans.c.project_id == project_id, spans.c.trace_id.in_(list(root_ids)))
        .group_by(spans.c.trace_id)).mappings()}
    return [_summary(trace_id, roots[root_id], sums[trace_id]) for trace_id, root_id in root_ids.items()
            if root_id in roots and trace_id in sums], total


def _named_page(conn: Connection, project_id: str, names: sa.Select[tuple[str]], matching: int,
                reach: int) -> sa.ColumnElement[bool]:
    """The condition that keeps a filtered page's traces, shaped for the cheaper of two reads.
    Walking the project's traces newest first and keeping the named ones reads about
    `reach * all / matching` rows; gathering the named ones by the name index and sorting them reads
    `matching`. A common name is walked (its page is near), a rare one gathered (it is few). The
    walk compares `name || ''`, which no index serves, so no planner swaps one read for the other."""
    every = conn.execute(sa.select(trace_counts.c.traces).where(
        trace_counts.c.project_id == project_id)).scalar_one_or_none() or matching
    if matching * matching >= reach * every:
        return (trace_roots.c.name + "").in_(names)
    return trace_roots.c.name.in_(names)


def _summary(trace_id: str, root: RowMapping, sums: RowMapping) -> TraceSummary:
    return TraceSummary(id=trace_id, name=root["name"], span_count=sums["span_count"],
                        start_time=sums["start_time"], end_time=sums["end_time"], status=root["status"],
                        input=root["input"], output=root["output"], total_tokens=int(sums["total_tokens"] or 0))
