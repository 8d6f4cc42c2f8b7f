"""Usage: cost, calls and tokens over time, split by model, function or a tag key chosen on the
page; one report from the engine's usage service (`GET /v2/analytics/usage`'s), drawn as stacked
bars with the table beneath."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import Markup
from starlette.responses import Response

from taskgate.engine.analytics import MAX_KEY_CHARS, usage_query
from taskgate.errors import BadRequestError
from taskgate.store.base import GROUP_BY_FUNCTION, GROUP_BY_MODEL, UsageRow
from taskgate.ui.charts import COLOURS, stacked_bars
from taskgate.ui.guard import Visit

# range name -> (length, granularity, label format of a bucket)
RANGES = {
    "24h": (timedelta(hours=24), "hour", "%H:00"),
    "7d": (timedelta(days=7), "day", "%m-%d"),
    "30d": (timedelta(days=30), "day", "%m-%d"),
    "365d": (timedelta(days=365), "month", "%Y-%m"),
}
METRICS = {"cost": "Cost (USD)", "calls": "Calls", "total_tokens": "Tokens"}
MAX_SERIES = COLOURS - 1  # the largest groups get a colour each; the rest are summed as "other"
NONE_LABEL = "(none)"


@dataclass(slots=True)
class Grouping:
    key: str  # what the report groups by: model, function or a tag key
    label: str  # how the form says it: model, function or tag:KEY


def _grouping(raw: str) -> Grouping:
    if raw in ("", GROUP_BY_MODEL):
        return Grouping(GROUP_BY_MODEL, GROUP_BY_MODEL)
    if raw == GROUP_BY_FUNCTION:
        return Grouping(GROUP_BY_FUNCTION, GROUP_BY_FUNCTION)
    if raw.startswith("tag:") and 0 < len(raw) - 4 <= MAX_KEY_CHARS:
        key = raw[4:]
        if key in (GROUP_BY_MODEL, GROUP_BY_FUNCTION):
            raise BadRequestError(f"a tag named '{key}' cannot be told from the {key} grouping")
        return Grouping(key, raw)
    raise BadRequestError(f"group by model, function or tag:KEY (a key of 1 to {MAX_KEY_CHARS} characters)")


def _start(now: datetime, length: timedelta, granularity: str) -> datetime:
    """The range's first bucket's start, so the first bar is a whole one."""
    start = now - length
    if granularity == "hour":
        return start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if granularity == "day":
        return start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _buckets(start: datetime, end: datetime, granularity: str) -> list[datetime]:
    buckets = []
    moment = start
    while moment < end:
        buckets.append(moment)
        if granularity == "hour":
            moment += timedelta(hours=1)
        elif granularity == "day":
            moment += timedelta(days=1)
        else:
            moment = moment.replace(year=moment.year + 1, month=1) if moment.month == 12 else \
                moment.replace(month=moment.month + 1)
    return buckets


def _value(row: UsageRow, metric: str) -> float:
    return row.cost if metric == "cost" else float(row.counters.get(metric, 0))


async def usage_page(visit: Visit) -> Response:
    params = visit.request.query_params
    range_name = params.get("range") or "7d"
    if range_name not in RANGES:
        raise BadRequestError(f"range must be one of {', '.join(RANGES)}")
    metric = params.get("metric") or "cost"
    if metric not in METRICS:
        raise BadRequestError(f"metric must be one of {', '.join(METRICS)}")
    grouping = _grouping(params.get("by", ""))
    length, granularity, label_format = RANGES[range_name]
    now = datetime.now(UTC)
    start = _start(now, length, granularity)
    query = usage_query(start, now + timedelta(seconds=1), granularity, [grouping.key], ["calls"], now=now)
    rows = await visit.ctx.engine.usage.report(visit.project_id, query)
    buckets = _buckets(start, now + timedelta(seconds=1), granularity)
    position = {bucket: index for index, bucket in enumerate(buckets)}
    by_group: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
    for row in rows:
        index = position.get(row.time_bucket)
        if index is not None:
            by_group[row.groups.get(grouping.key) or NONE_LABEL][index] += _value(row, metric)
    ranked = sorted(by_group.items(), key=lambda item: -sum(item[1]))
    series = ranked[:MAX_SERIES]
    if len(ranked) > MAX_SERIES:
        rest = [sum(values[i] for _, values in ranked[MAX_SERIES:]) for i in range(len(buckets))]
        series.append(("other", rest))
    chart: Markup = stacked_bars([bucket.strftime(label_format) for bucket in buckets], series,
                                 f"{METRICS[metric]} by {grouping.label}, {range_name}")
    table = sorted(rows, key=lambda row: (row.time_bucket, row.groups.get(grouping.key) or ""), reverse=True)
    totals = {"cost": sum(row.cost for row in rows), "calls": sum(row.counters.get("calls", 0) for row in rows),
              "total_tokens": sum(row.counters.get("total_tokens", 0) for row in rows)}
    return visit.page("usage.html", title="Usage", chart=chart, legend=[name for name, _ in series], rows=table,
                      totals=totals, grouping=grouping, ranges=list(RANGES), range_name=range_name,
                      metrics=METRICS, metric=metric, none_label=NONE_LABEL, granularity=granularity)
