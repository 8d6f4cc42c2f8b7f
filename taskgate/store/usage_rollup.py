"""Usage reports from the hourly rollups (migration 0014), with raw spans for the partial hours at the ends.

A report can use the rollups when its buckets are whole hours or coarser (not minutes) and it groups
by model and/or function, or by one tag key that is rolled up (not in `usage_tag_skipped`) asking
for no token count but the total (the tag rollup keeps calls, cost and total tokens only). The
whole hours inside [start, end) come from the rollups; the spans in the partial hours at either end
(the UI's ranges end at "now") are read raw. Both are rows of one UNION ALL that a single outer
GROUP BY sums, so a bucket that straddles them is summed once. A bucket of an hour-prefix on
SQLite, `date_trunc` of the hour on Postgres, is the same bucket the raw query gives its spans.

Grouped by a tag key, the rollup knows the spans that carry the key with a value; the spans without
one (no key, or JSON null) make the None group, which is the hour's total less the tagged spans:
the tag rows are added once with their value and once, negated, into the None group beside the
totals. A None group whose calls come to 0 has no spans, and is left out (HAVING).

Counts are exact. Cost is a float: sums in a different order can differ in the last bits (the raw
query's own order is the database's), so a rollup's cost equals the raw one to float rounding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.store.base import GROUP_BY_FUNCTION, GROUP_BY_MODEL, UsageQuery
from taskgate.store.tables import (
    USAGE_JSON_COUNTERS,
    USAGE_TAG_COUNTERS,
    usage_hours,
    usage_tag_hours,
    usage_tag_skipped,
)

_HOUR = timedelta(hours=1)
_NAME_GROUPS = {GROUP_BY_MODEL: "model_key", GROUP_BY_FUNCTION: "function_key"}
ROLLED_COUNTERS = ("calls", "cost", "total_tokens", *USAGE_JSON_COUNTERS)


def whole_hours(query: UsageQuery) -> tuple[datetime, datetime] | None:
    """The whole hours inside the query's range the rollups can answer, or None when they cannot."""
    if query.granularity == "minute":
        return None
    tags = [key for key in query.group_by if key not in _NAME_GROUPS]
    if tags and (len(query.group_by) > 1 or any(name not in USAGE_TAG_COUNTERS for name in query.fields)):
        return None
    start, end = _utc(query.start), _utc(query.end)
    floor = start.replace(minute=0, second=0, microsecond=0)
    first = floor if floor == start else floor + _HOUR
    last = end.replace(minute=0, second=0, microsecond=0)
    return (first, last) if first < last else None


def _utc(moment: datetime) -> datetime:
    """Hours are UTC hours (a +05:30 range starts mid-hour); a naive time is UTC, as spans take it."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def tag_rolled_up(conn: Connection, project_id: str, query: UsageQuery) -> bool:
    """False when the query groups by a tag key the rollup gave up on for this project."""
    tags = [key for key in query.group_by if key not in _NAME_GROUPS]
    if not tags:
        return True
    skipped = sa.select(sa.literal(1)).where(usage_tag_skipped.c.project_id == project_id,
                                              usage_tag_skipped.c.tag_key == tags[0])
    return conn.execute(skipped).first() is None


def hour_value(dialect: str, moment: datetime) -> Any:
    """An hour as the rollups store it: SQLite's time-text prefix, Postgres' naive UTC timestamp."""
    naive = moment.replace(tzinfo=None)
    return naive if dialect == "postgresql" else naive.strftime("%Y-%m-%d %H")


def _name(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A name key back to the name: '' is none, '=' and the name otherwise."""
    return sa.case((column == "", sa.null()), else_=sa.func.substr(column, 2))


def rolled_counters(query: UsageQuery) -> tuple[str, ...]:
    """The counters the rollup rows of this query carry, in their order."""
    tagged = any(key not in _NAME_GROUPS for key in query.group_by)
    return USAGE_TAG_COUNTERS if tagged else ROLLED_COUNTERS


def rollup_selects(dialect: str, project_id: str, query: UsageQuery, hours: tuple[datetime, datetime],
                   bucket: Any) -> list[sa.Select[Any]]:
    """The rollup rows of the whole hours, as (bucket, groups..., `rolled_counters(query)`).
    `bucket(column)` makes the query's bucket of an hour column. Each part is first summed per hour
    (and group), in its primary key's order where it can be, so the outer GROUP BY sorts a few rows
    per hour, not one per model and function."""
    first, last = hour_value(dialect, hours[0]), hour_value(dialect, hours[1])

    def sums(table: sa.Table, sign: int = 1) -> list[sa.ColumnElement[Any]]:
        return [(sa.func.sum(table.c[name]) * sign).label(name) for name in rolled_counters(query)]

    tags = [key for key in query.group_by if key not in _NAME_GROUPS]
    names = [usage_hours.c[_NAME_GROUPS[key]] for key in query.group_by if key in _NAME_GROUPS]
    hours_groups = [(_name(usage_hours.c[_NAME_GROUPS[key]]) if key in _NAME_GROUPS else _null_text())
                    for key in query.group_by]
    totals = (sa.select(bucket(usage_hours.c.hour), *hours_groups, *sums(usage_hours))
              .where(usage_hours.c.project_id == project_id, usage_hours.c.hour >= first, usage_hours.c.hour < last)
              .group_by(usage_hours.c.hour, *names))
    if not tags:
        return [totals]
    tagged = [usage_tag_hours.c.project_id == project_id, usage_tag_hours.c.tag_key == tags[0],
              usage_tag_hours.c.hour >= first, usage_tag_hours.c.hour < last]
    hour = bucket(usage_tag_hours.c.hour)
    # one row per hour and value already (the primary key's)
    with_value = sa.select(hour, usage_tag_hours.c.tag_value,
                           *(usage_tag_hours.c[name] for name in rolled_counters(query))).where(*tagged)
    untagged = (sa.select(hour, _null_text(), *sums(usage_tag_hours, -1)).where(*tagged)
                .group_by(usage_tag_hours.c.hour))
    return [totals, with_value, untagged]


def _null_text() -> sa.ColumnElement[Any]:
    return sa.cast(sa.null(), sa.Text)
