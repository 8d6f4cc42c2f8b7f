"""Usage analytics summed by the database, on SQLite and Postgres: exact sums per bucket and group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskgate.engine.analytics import MAX_BUCKETS, bucket_count, current_month, usage_query
from taskgate.errors import BadRequestError
from taskgate.store import SqlStore
from taskgate.store.base import SpanRecord, UsageQuery

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _span(project_id: str, number: int, start: datetime, *, model: str | None = "openai/gpt-4o-mini",
          function: str | None = "summarise", cost: float | None = 0.001, tokens: tuple[int, int] = (10, 5),
          tags: dict[str, Any] | None = None, reasoning: int = 0) -> SpanRecord:
    return SpanRecord(
        id=f"s{number}", trace_id=f"t{number}", project_id=project_id, name="call", start_time=start,
        end_time=start + timedelta(seconds=1), model_used=model, function_name=function, cost=cost,
        usage={"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens),
               "reasoning_tokens": reasoning},
        tags=tags or {},
    )


@pytest.fixture
async def seeded(store: SqlStore, project: str) -> str:
    """Seven spans over three days, two models, two functions, two customers; plus a span that
    used nothing (a plain trace span) and one in another project, which must not count."""
    spans = [
        _span(project, 1, T0, tags={"customer": "acme"}),
        _span(project, 2, T0 + timedelta(minutes=5), tags={"customer": "acme"}, reasoning=3),
        _span(project, 3, T0 + timedelta(hours=2), model="anthropic/claude-haiku-4-5", cost=0.01,
              tokens=(100, 50), tags={"customer": "globex"}),
        _span(project, 4, T0 + DAY, function="classify", cost=None, tokens=(7, 0)),
        _span(project, 5, T0 + DAY + timedelta(minutes=1), function="classify", cost=0.002, tags={"customer": 7}),
        _span(project, 6, T0 + 2 * DAY, model="anthropic/claude-haiku-4-5", cost=0.0, tokens=(1, 1)),
        _span(project, 7, T0 + 2 * DAY + timedelta(hours=14), cost=0.004, tokens=(2, 2)),
        _span(project, 8, T0 + DAY, model=None, function=None, cost=None, tokens=(0, 0)),
    ]
    other = await store.ensure_project("another-project-for-usage")
    await store.write_spans([*spans, _span(other, 1, T0, cost=5.0, tokens=(1000, 1000))])
    return project


def _query(granularity: str = "day", group_by: tuple[str, ...] = (),
           fields: tuple[str, ...] = ("input_tokens", "output_tokens"),
           start: datetime = T0 - DAY, end: datetime = T0 + 4 * DAY) -> UsageQuery:
    return UsageQuery(start=start, end=end, granularity=granularity, group_by=group_by, fields=fields)


def _rows(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Rows as comparable tuples, sorted (the two databases order NULL groups differently)."""
    out = [(row.time_bucket, tuple(row.groups.items()), round(row.cost, 9), tuple(sorted(row.counters.items())))
           for row in rows]
    return sorted(out, key=repr)


async def test_daily_totals(store: SqlStore, seeded: str) -> None:
    rows = await store.usage_report(seeded, _query())
    assert _rows(rows) == _rows([
        _Row(T0.replace(hour=0), {}, 0.012, (120, 60, 180)),
        _Row(T0.replace(hour=0) + DAY, {}, 0.002, (17, 5, 22)),
        _Row(T0.replace(hour=0) + 2 * DAY, {}, 0.004, (3, 3, 6)),
    ])


async def test_group_by_model_and_function(store: SqlStore, seeded: str) -> None:
    rows = await store.usage_report(seeded, _query(group_by=("model", "function")))
    day0, day1, day2 = (T0.replace(hour=0) + n * DAY for n in range(3))
    assert _rows(rows) == _rows([
        _Row(day0, {"model": "openai/gpt-4o-mini", "function": "summarise"}, 0.002, (20, 10, 30)),
        _Row(day0, {"model": "anthropic/claude-haiku-4-5", "function": "summarise"}, 0.01, (100, 50, 150)),
        _Row(day1, {"model": "openai/gpt-4o-mini", "function": "classify"}, 0.002, (17, 5, 22)),
        _Row(day2, {"model": "anthropic/claude-haiku-4-5", "function": "summarise"}, 0.0, (1, 1, 2)),
        _Row(day2, {"model": "openai/gpt-4o-mini", "function": "summarise"}, 0.004, (2, 2, 4)),
    ])


async def test_group_by_tag_and_extra_fields(store: SqlStore, seeded: str) -> None:
    rows = await store.usage_report(seeded, _query(granularity="month", group_by=("customer",),
                                                   fields=("input_tokens", "output_tokens", "reasoning_tokens",
                                                           "calls")))
    month = T0.replace(day=1, hour=0)
    by_customer = {row.groups["customer"]: (round(row.cost, 9), row.counters) for row in rows}
    assert {row.time_bucket for row in rows} == {month}
    assert by_customer == {
        "acme": (0.002, {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30, "reasoning_tokens": 3,
                         "calls": 2}),
        "globex": (0.01, {"input_tokens": 100, "output_tokens": 50, "total_tokens": 150, "reasoning_tokens": 0,
                          "calls": 1}),
        "7": (0.002, {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "reasoning_tokens": 0, "calls": 1}),
        None: (0.004, {"input_tokens": 10, "output_tokens": 3, "total_tokens": 13, "reasoning_tokens": 0,
                       "calls": 3}),
    }


@pytest.mark.parametrize(("granularity", "buckets"), [
    ("minute", 7), ("hour", 5), ("day", 3), ("month", 1), ("year", 1),
])
async def test_granularities(store: SqlStore, seeded: str, granularity: str, buckets: int) -> None:
    rows = await store.usage_report(seeded, _query(granularity))
    assert len(rows) == buckets
    assert round(sum(row.cost for row in rows), 9) == 0.018
    assert sum(row.counters["total_tokens"] for row in rows) == 208
    first = min(row.time_bucket for row in rows)
    assert first.tzinfo is not None and first == {
        "minute": T0, "hour": T0, "day": T0.replace(hour=0), "month": T0.replace(day=1, hour=0),
        "year": T0.replace(month=1, day=1, hour=0),
    }[granularity]


async def test_range_is_half_open_and_may_be_empty(store: SqlStore, seeded: str) -> None:
    only_first = await store.usage_report(seeded, _query("minute", start=T0, end=T0 + timedelta(minutes=5)))
    assert [(row.time_bucket, row.counters["total_tokens"]) for row in only_first] == [(T0, 15)]
    assert await store.usage_report(seeded, _query(start=T0 + 10 * DAY, end=T0 + 11 * DAY)) == []
    assert await store.usage_report("no-such-project", _query()) == []


async def test_default_counters_are_cost_and_total_tokens(store: SqlStore, seeded: str) -> None:
    [row] = await store.usage_report(seeded, _query("year", group_by=("function",), fields=(),
                                                    start=T0 + DAY, end=T0 + 2 * DAY))
    assert (row.groups, row.counters, round(row.cost, 9)) == ({"function": "classify"}, {"total_tokens": 22}, 0.002)


async def test_rows_are_capped_one_past_the_limit(store: SqlStore, seeded: str) -> None:
    query = UsageQuery(start=T0 - DAY, end=T0 + 4 * DAY, granularity="minute", max_rows=3)
    assert len(await store.usage_report(seeded, query)) == 4


async def test_query_rules() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    default = usage_query(None, None, None, [], [], now=now)
    assert (default.start, default.end, default.granularity) == (
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "day")
    assert current_month(datetime(2026, 2, 28, tzinfo=UTC))[1] == datetime(2026, 3, 1, tzinfo=UTC)
    assert usage_query(T0, T0, "hour", ["model", "model"], ["calls", "total_tokens"]).group_by == ("model",)
    assert usage_query(T0, T0, "hour", [], ["calls", "total_tokens"]).fields == ("calls",)
    assert bucket_count(T0, T0 + timedelta(days=365), "minute") > MAX_BUCKETS
    assert bucket_count(datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), "month") == 4
    refused = [
        dict(start=T0, end=T0 - DAY),  # to before from
        dict(granularity="week"),
        dict(granularity="minute", end=T0 + timedelta(days=365)),
        dict(group_by=["a", "b", "c", "d", "e", "f"]),
        dict(group_by=['say "hi"']),
        dict(group_by=["back\\slash"]),
        dict(group_by=["x" * 101]),
        dict(group_by=[""]),
        dict(group_by=["cost"]),
        dict(group_by=["time_bucket"]),
        dict(fields=["price"]),
    ]
    for case in refused:
        arguments: dict[str, Any] = {"start": T0, "end": T0 + DAY, "granularity": "hour", "group_by": [], "fields": []}
        arguments.update(case)
        with pytest.raises(BadRequestError):
            usage_query(arguments["start"], arguments["end"], arguments["granularity"], arguments["group_by"],
                        arguments["fields"])


class _Row:
    """An expected row, in the shape `_rows` compares."""

    def __init__(self, bucket: datetime, groups: dict[str, Any], cost: float, tokens: tuple[int, int, int]) -> None:
        self.time_bucket = bucket
        self.groups = groups
        self.cost = cost
        self.counters = dict(zip(("input_tokens", "output_tokens", "total_tokens"), tokens, strict=True))
