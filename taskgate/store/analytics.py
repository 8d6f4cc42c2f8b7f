"""Usage analytics: cost and tokens per time bucket and group, summed by the database itself.

A report whose buckets are hours or coarser sums the hourly rollups for its whole hours and the spans
of its partial end hours (`usage_report`, see taskgate/store/usage_rollup.py); the rest, and the
reference those must equal, is the query over spans below (`raw_usage_report`).

One GROUP BY over the spans of a project in a time range, never spans loaded into Python. The
`ix_spans_usage` index (project_id, start_time, model_used, function_name, cost, total_tokens) finds
them and, for a report of cost, total tokens and calls by time, model or function, holds every
column it reads, so the rows themselves are not touched. Tag groups and the other token counts
(`fields`) come from the rows' JSON. Buckets are made in SQL: SQLite keeps times as
"YYYY-MM-DD HH:MM:SS.ffffff" text in UTC, so a bucket is a prefix of it; Postgres truncates the
UTC time with `date_trunc`. Tag values come out by JSON extraction (`json_extract`, `->>`).

Groups are referred to by position (GROUP BY 1, 2, ...): Postgres takes two bound parameters as
two different expressions, so `tags ->> $1` in the select list would not match `tags ->> $2` in
the GROUP BY.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.store.base import (
    GROUP_BY_FUNCTION,
    GROUP_BY_MODEL,
    USAGE_TOKENS,
    FunctionStats,
    UsageQuery,
    UsageRow,
)
from taskgate.store.tables import spans
from taskgate.store.usage_rollup import rolled_counters, rollup_selects, tag_rolled_up, whole_hours

# SQLite: how many characters of the stored time text name a bucket, and how to read them back.
_SQLITE_PREFIX = {"minute": (16, "%Y-%m-%d %H:%M"), "hour": (13, "%Y-%m-%d %H"), "day": (10, "%Y-%m-%d"),
                  "month": (7, "%Y-%m"), "year": (4, "%Y")}


def _bucket(dialect: str, granularity: str,
            column: sa.ColumnElement[Any] = spans.c.start_time) -> sa.ColumnElement[Any]:
    """The bucket of a span's start; of a rollup's hour too (a UTC time on Postgres, a time-text prefix on SQLite)."""
    if dialect == "postgresql":
        # `granularity` is one of five fixed words (UsageQuery is checked before it gets here)
        utc = sa.func.timezone("UTC", column) if column is spans.c.start_time else column
        return sa.func.date_trunc(sa.literal_column(f"'{granularity}'"), utc)
    length, _ = _SQLITE_PREFIX[granularity]
    return sa.func.substr(sa.type_coerce(column, sa.String), 1, length)


def _bucket_time(dialect: str, granularity: str, value: Any) -> datetime:
    if dialect == "postgresql":
        return value.replace(tzinfo=UTC)
    return datetime.strptime(value, _SQLITE_PREFIX[granularity][1]).replace(tzinfo=UTC)


def _group(dialect: str, key: str) -> sa.ColumnElement[Any]:
    if key == GROUP_BY_MODEL:
        return spans.c.model_used
    if key == GROUP_BY_FUNCTION:
        return spans.c.function_name
    return tag_value(dialect, key)


def tag_value(dialect: str, key: str) -> sa.ColumnElement[Any]:
    """A span's tag `key` as SQL (text on Postgres; on SQLite the JSON value, a number as a number)."""
    if dialect == "postgresql":
        return sa.type_coerce(spans.c.tags, sa.JSON).op("->>")(sa.literal(key, sa.String))
    # The key holds no `"` or `\` (checked by the engine), so it can be quoted as a path label.
    return sa.func.json_extract(sa.type_coerce(spans.c.tags, sa.String), sa.literal(f'$."{key}"', sa.String))


def _counter(dialect: str, name: str) -> sa.ColumnElement[Any]:
    """The sum of one usage counter; `total_tokens` has its own column, `calls` counts spans."""
    if name == "total_tokens":
        return sa.func.coalesce(sa.func.sum(spans.c.total_tokens), 0)
    if name == "calls":
        return sa.func.count()
    return sa.func.coalesce(sa.func.sum(_usage_value(dialect, name)), 0)


def _usage_value(dialect: str, name: str) -> sa.ColumnElement[Any]:
    """One span's usage counter from its JSON (migration 0014's triggers extract it alike)."""
    if dialect == "postgresql":
        # a value that is not a number (never written by the engine) counts as nothing, not as an error
        usage = sa.type_coerce(spans.c.usage, sa.JSON)
        return sa.case((sa.func.jsonb_typeof(usage.op("->")(sa.literal(name))) == "number",
                        sa.cast(usage.op("->>")(sa.literal(name)), sa.Numeric)), else_=None)
    return sa.func.json_extract(sa.type_coerce(spans.c.usage, sa.String), sa.literal(f"$.{name}"))


def _span_counter(dialect: str, name: str) -> sa.ColumnElement[Any]:
    """One span's share of a rolled-up counter, for a raw edge beside the rollup rows."""
    if name == "calls":
        return sa.literal(1, sa.BigInteger)
    if name in ("cost", "total_tokens"):
        return sa.func.coalesce(spans.c[name], 0)
    return sa.func.coalesce(_usage_value(dialect, name), 0)


def usage_report(conn: Connection, project_id: str, query: UsageQuery) -> list[UsageRow]:
    """At most `query.max_rows + 1` rows, ordered by bucket then group values. Only the spans that
    used anything count (a price or tokens), so plain trace spans make no empty groups."""
    hours = whole_hours(query)
    if hours is None or not tag_rolled_up(conn, project_id, query):
        return raw_usage_report(conn, project_id, query)
    dialect = conn.dialect.name
    counters = tuple(dict.fromkeys((*USAGE_TOKENS, *query.fields)))
    return _rows(dialect, query, counters, conn.execute(_from_rollups(dialect, project_id, query, counters, hours)))


def raw_usage_report(conn: Connection, project_id: str, query: UsageQuery) -> list[UsageRow]:
    """The report summed over the spans themselves: for minutes, ranges within an hour, several tag
    keys or a key the rollup does not keep; and the reference the rollups must equal."""
    dialect = conn.dialect.name
    counters = tuple(dict.fromkeys((*USAGE_TOKENS, *query.fields)))
    columns = [_bucket(dialect, query.granularity).label("bucket")]
    columns += [_group(dialect, key).label(f"g{index}") for index, key in enumerate(query.group_by)]
    columns.append(sa.func.sum(spans.c.cost).label("cost"))
    columns += [_counter(dialect, name).label(f"c{index}") for index, name in enumerate(counters)]
    positions: list[sa.ColumnElement[Any]] = [sa.literal_column(str(position))
                                              for position in range(1, len(query.group_by) + 2)]
    statement = (
        sa.select(*columns)
        .where(spans.c.project_id == project_id, spans.c.start_time >= query.start, spans.c.start_time < query.end,
               sa.or_(spans.c.cost.is_not(None), spans.c.total_tokens > 0))
        .group_by(*positions).order_by(*positions).limit(query.max_rows + 1)
    )
    return _rows(dialect, query, counters, conn.execute(statement))


def _from_rollups(dialect: str, project_id: str, query: UsageQuery, counters: tuple[str, ...],
                  hours: tuple[datetime, datetime]) -> sa.Select[Any]:
    """The report summed over the rollups' whole hours and the raw spans of the partial hours at the
    ends, in one GROUP BY (see taskgate/store/usage_rollup.py)."""
    rolled = rolled_counters(query)
    selects = rollup_selects(dialect, project_id, query, hours,
                             lambda column: _bucket(dialect, query.granularity, column))
    start = spans.c.start_time
    edges = [sa.and_(start >= query.start, start < hours[0])] if query.start < hours[0] else []
    edges += [sa.and_(start >= hours[1], start < query.end)] if hours[1] < query.end else []
    if edges:
        selects.append(
            sa.select(_bucket(dialect, query.granularity), *(_group(dialect, key) for key in query.group_by),
                      *(_span_counter(dialect, name) for name in rolled))
            .where(spans.c.project_id == project_id, sa.or_(*edges),
                   sa.or_(spans.c.cost.is_not(None), spans.c.total_tokens > 0)))
    parts = sa.union_all(*selects).subquery("parts")
    part_columns = list(parts.c)
    width = len(query.group_by) + 1
    sums = {name: sa.func.sum(part_columns[width + index]) for index, name in enumerate(rolled)}
    positions: list[sa.ColumnElement[Any]] = [sa.literal_column(str(position)) for position in range(1, width + 1)]
    return (sa.select(part_columns[0].label("bucket"),
                      *(column.label(f"g{index}") for index, column in enumerate(part_columns[1:width])),
                      sums["cost"].label("cost"),
                      *(sa.func.coalesce(sums[name], 0).label(f"c{index}") for index, name in enumerate(counters)))
            .group_by(*positions).having(sums["calls"] > 0).order_by(*positions).limit(query.max_rows + 1))


def _rows(dialect: str, query: UsageQuery, counters: tuple[str, ...], result: sa.CursorResult[Any]) -> list[UsageRow]:
    rows = []
    for row in result.mappings():
        groups = {key: _text(row[f"g{index}"]) for index, key in enumerate(query.group_by)}
        rows.append(UsageRow(
            time_bucket=_bucket_time(dialect, query.granularity, row["bucket"]),
            groups=groups,
            cost=float(row["cost"] or 0.0),
            counters={name: int(row[f"c{index}"] or 0) for index, name in enumerate(counters)},
        ))
    return rows


def _text(value: Any) -> str | None:
    """A group's value as text: SQLite's JSON extraction gives numbers as numbers, Postgres' `->>` as text."""
    return None if value is None else str(value)


def function_stats(conn: Connection, project_id: str, names: list[str], since: datetime) -> dict[str, FunctionStats]:
    """Calls, failed calls and cost of each named function's spans started since `since`: one GROUP BY
    over the project's spans of those names in that range, found by `ix_spans_usage`."""
    if not names:
        return {}
    failed = sa.func.sum(sa.case((spans.c.status == "error", 1), else_=0))
    statement = (sa.select(spans.c.function_name, sa.func.count(), failed, sa.func.sum(spans.c.cost))
                 .where(spans.c.project_id == project_id, spans.c.start_time >= since,
                        spans.c.function_name.in_(names))
                 .group_by(spans.c.function_name))
    return {name: FunctionStats(calls=int(calls), errors=int(errors or 0), cost=None if cost is None else float(cost))
            for name, calls, errors, cost in conn.execute(statement)}
