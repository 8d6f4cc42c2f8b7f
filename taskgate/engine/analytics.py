"""Usage analytics: the rules of a usage report, which the store then aggregates in SQL.

A report is bounded before it reaches the database: at most MAX_BUCKETS time buckets (a minute
granularity over a year is refused, not computed), MAX_GROUP_BY group keys and MAX_ROWS rows in the
answer. Names are checked here too: a group key becomes a JSON path on SQLite and an output key,
so it may not hold quotes or backslashes, nor take the name of a key the answer already has.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from taskgate.errors import BadRequestError
from taskgate.store.base import (
    USAGE_FIELDS,
    USAGE_GRANULARITIES,
    USAGE_TOKENS,
    FunctionStats,
    Store,
    UsageQuery,
    UsageRow,
)
from taskgate.telemetry.recorder import SpanRecorder

MAX_BUCKETS = 10_000
MAX_GROUP_BY = 5
MAX_ROWS = 10_000
MAX_KEY_CHARS = 100
DEFAULT_GRANULARITY = "day"
RESERVED_KEYS = frozenset({"time_bucket", "cost", *USAGE_FIELDS})
_FIXED = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def current_month(now: datetime) -> tuple[datetime, datetime]:
    """The spec's default range: this calendar month (UTC), its end exclusive."""
    start = _month_start(now)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def bucket_count(start: datetime, end: datetime, granularity: str) -> int:
    """How many buckets [start, end) touches at most (a partial bucket at either end counts)."""
    if granularity in _FIXED:
        return int((end - start) / _FIXED[granularity]) + 2
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    return months if granularity == "month" else end.year - start.year + 1


def _group_key(key: str) -> str:
    if not (0 < len(key) <= MAX_KEY_CHARS and key.isprintable()) or '"' in key or "\\" in key:
        raise BadRequestError(f"group_by keys must be 1 to {MAX_KEY_CHARS} printable characters without quotes "
                              f"or backslashes, got {key[:MAX_KEY_CHARS]!r}")
    if key in RESERVED_KEYS:
        raise BadRequestError(f"group_by '{key}' names a key every usage item already has")
    return key


def usage_query(start: datetime | None, end: datetime | None, granularity: str | None,
                group_by: Sequence[str], fields: Sequence[str], now: datetime | None = None) -> UsageQuery:
    """The checked query; a missing range is the current month, a missing granularity a day."""
    default_start, default_end = current_month(now or datetime.now(UTC))
    start, end = start or default_start, end or default_end
    if end < start:
        raise BadRequestError("to_date must not be before from_date")
    granularity = granularity or DEFAULT_GRANULARITY
    if granularity not in USAGE_GRANULARITIES:
        raise BadRequestError(f"granularity must be one of {', '.join(USAGE_GRANULARITIES)}, got {granularity[:20]!r}")
    buckets = bucket_count(start, end, granularity)
    if buckets > MAX_BUCKETS:
        raise BadRequestError(f"from_date to to_date spans about {buckets} {granularity} buckets; at most "
                              f"{MAX_BUCKETS} are allowed: use a shorter range or a coarser granularity")
    if len(group_by) > MAX_GROUP_BY:
        raise BadRequestError(f"group_by takes at most {MAX_GROUP_BY} keys, got {len(group_by)}")
    unknown = [name for name in fields if name not in USAGE_FIELDS]
    if unknown:
        raise BadRequestError(f"fields must be among {', '.join(USAGE_FIELDS)}, got {unknown[0][:MAX_KEY_CHARS]!r}")
    extra = tuple(name for name in dict.fromkeys(fields) if name not in USAGE_TOKENS)
    keys = tuple(dict.fromkeys(_group_key(key) for key in group_by))
    return UsageQuery(start=start, end=end, granularity=granularity, group_by=keys, fields=extra, max_rows=MAX_ROWS)


class UsageService:
    def __init__(self, store: Store, recorder: SpanRecorder) -> None:
        self._store = store
        self._recorder = recorder

    async def function_stats(self, project_id: str, names: list[str], since: datetime) -> dict[str, FunctionStats]:
        await self._recorder.flush()
        return await self._store.function_stats(project_id, names, since)

    async def report(self, project_id: str, query: UsageQuery) -> list[UsageRow]:
        """The report's rows; more than `max_rows` is refused rather than cut, since a cut report
        would silently under-count."""
        await self._recorder.flush()  # the calls just made count too
        rows = await self._store.usage_report(project_id, query)
        if len(rows) > query.max_rows:
            raise BadRequestError(f"the report has more than {query.max_rows} rows: use a shorter range, a coarser "
                                  "granularity or fewer group_by keys")
        return rows
