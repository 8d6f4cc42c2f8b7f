"""The hourly usage rollups (migration 0014) on SQLite and Postgres: kept exact by the span triggers
through inserts, upserts and deletes, bounded for tags, filled by the migration, and reports served
from them equal to reports over raw spans on seeded random data."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from taskgate.engine.analytics import usage_query
from taskgate.store import SqlStore
from taskgate.store.analytics import raw_usage_report, usage_report
from taskgate.store.base import SpanRecord, UsageQuery, UsageRow
from taskgate.store.tables import usage_hours, usage_tag_hours, usage_tag_skipped
from taskgate.store.usage_rollup import tag_rolled_up, whole_hours

T0 = datetime(2026, 10, 30, 22, 0, tzinfo=UTC)
MODELS = ["openai/gpt-4o", "anthropic/claude", "", None]
FUNCTIONS = ["fn-a", "fn-b", None]
TAG_VALUES: list[Any] = ["acme", "globex", "", 7, 0, True, False, None, "ünï \"q\""]
GROUPINGS: list[list[str]] = [[], ["model"], ["function"], ["function", "model"], ["customer"], ["tier"],
                              ["blob"], ["absent"], ["customer", "model"]]
FIELDS = ["calls", "input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens", "cache_write_tokens"]


def random_span(rng: random.Random, project: str, index: int) -> SpanRecord:
    tags: dict[str, Any] = {}
    if rng.random() < 0.8:
        tags["customer"] = rng.choice(TAG_VALUES)
    if rng.random() < 0.5:
        tags["tier"] = rng.choice(["gold", 3, None])
    if rng.random() < 0.1:  # a value the rollup does not keep: reports by "blob" read raw spans
        tags["blob"] = rng.choice(["x" * 150, {"nested": 1}, [1, 2], "short"])
    usage = {name: rng.randint(0, 50) for name in FIELDS[1:] if rng.random() < 0.7}
    start = T0 + timedelta(seconds=rng.randint(0, 3 * 86400)) if rng.random() < 0.97 else None
    return SpanRecord(id=f"s{index}", trace_id=f"t{index % 7}", project_id=project, name="call",
                      start_time=start, model_used=rng.choice(MODELS), function_name=rng.choice(FUNCTIONS),
                      usage=usage, cost=rng.choice([None, 0.0, rng.random() / 1000, rng.random() * 3]), tags=tags)


def assert_same(rollup: list[UsageRow], raw: list[UsageRow]) -> None:
    """Buckets, groups and counts are equal; cost to float rounding (sums in another order)."""
    assert [(r.time_bucket, r.groups, r.counters) for r in rollup] == [(r.time_bucket, r.groups, r.counters)
                                                                       for r in raw]
    for mine, theirs in zip(rollup, raw, strict=True):
        assert math.isclose(mine.cost, theirs.cost, rel_tol=1e-9, abs_tol=1e-12), (mine, theirs)


def random_query(rng: random.Random) -> UsageQuery:
    aligned = rng.random() < 0.5
    start = T0 + timedelta(hours=rng.randint(-3, 40), minutes=0 if aligned else rng.randint(0, 59))
    end = start + timedelta(hours=rng.randint(0, 60), minutes=0 if aligned else rng.randint(0, 59),
                            seconds=rng.randint(0, 1))
    fields = rng.sample(FIELDS, rng.randint(0, len(FIELDS)))
    return usage_query(start, end, rng.choice(["hour", "day", "month", "year"]), rng.choice(GROUPINGS), fields)


async def reports(store: SqlStore, project: str, query: UsageQuery) -> tuple[list[UsageRow], list[UsageRow]]:
    rollup = await store.database.read(lambda conn: usage_report(conn, project, query))
    raw = await store.database.read(lambda conn: raw_usage_report(conn, project, query))
    return rollup, raw


def rollup_rows(store: SqlStore, project: str) -> list[dict[str, Any]]:
    def read(conn: sa.Connection) -> list[dict[str, Any]]:
        rows = []
        for table in (usage_hours, usage_tag_hours):
            rows += [dict(row) for row in conn.execute(sa.select(table).where(table.c.project_id == project)
                                                       .order_by(*table.primary_key.columns)).mappings()]
        return rows
    return store.database.transaction(read, write=False)


async def test_reports_from_rollups_equal_raw_reports_through_writes_rewrites_and_deletes(
        store: SqlStore, project: str) -> None:
    rng = random.Random(20261203)
    spans = [random_span(rng, project, index) for index in range(400)]
    await store.write_spans(spans)
    # a span is upserted more than once (a stream opened, then finished): rewrite some, in batches
    rewritten = [random_span(rng, project, rng.randrange(400)) for _ in range(150)]
    await store.write_spans(rewritten)
    for span in rng.sample(spans, 40):
        await store.delete_span(project, span.id)
    await store.delete_trace(project, "t3")
    served = 0
    for _ in range(120):
        query = random_query(rng)
        rollup, raw = await reports(store, project, query)
        assert_same(rollup, raw)
        served += whole_hours(query) is not None
    assert served > 30  # the rollups did answer many of them
    for group_by in (["customer"], ["tier"], ["model"], []):  # whole days and a partial hour at the end
        query = usage_query(T0, T0 + timedelta(days=2, minutes=17), "day", group_by, ["calls"])
        assert whole_hours(query) is not None
        assert await store.database.read(lambda conn, q=query: tag_rolled_up(conn, project, q))
        assert_same(*await reports(store, project, query))
    assert any(rollup_rows(store, project))


async def test_rewriting_and_deleting_every_span_empties_the_rollups(store: SqlStore, project: str) -> None:
    rng = random.Random(7)
    spans = [random_span(rng, project, index) for index in range(60)]
    await store.write_spans(spans)
    assert rollup_rows(store, project)
    # rewritten without a cost or tokens, a span no longer counts; back with them, it counts again
    await store.write_spans([SpanRecord(id=s.id, trace_id=s.trace_id, project_id=project, name="call",
                                        start_time=s.start_time) for s in spans])
    assert rollup_rows(store, project) == []
    await store.write_spans(spans)
    query = usage_query(T0, T0 + timedelta(days=4), "day", ["customer"], FIELDS)
    assert_same(*await reports(store, project, query))
    for span in spans:
        await store.delete_span(project, span.id)
    assert rollup_rows(store, project) == []
    assert (await reports(store, project, query))[0] == []


async def test_a_long_value_or_too_many_values_in_an_hour_sends_a_key_to_raw_spans(
        store: SqlStore, project: str) -> None:
    hour = T0 + timedelta(hours=5)
    one = [SpanRecord(id=f"v{i}", trace_id="t", project_id=project, name="call", start_time=hour, cost=0.5,
                      tags={"request": f"r{i}", "customer": "acme", "note": "short"}) for i in range(1001)]
    await store.write_spans(one[:1000])
    query = usage_query(T0, T0 + timedelta(days=1), "day", ["request"], [])
    assert await store.database.read(lambda conn: tag_rolled_up(conn, project, query))
    await store.write_spans(one[1000:])  # the 1,001st value in one hour
    assert not await store.database.read(lambda conn: tag_rolled_up(conn, project, query))
    await store.write_spans([SpanRecord(id="long", trace_id="t", project_id=project, name="call", start_time=hour,
                                        cost=1.0, tags={"note": "n" * 101})])

    def kept(conn: sa.Connection) -> tuple[set[str], set[str]]:
        keys = set(conn.execute(sa.select(usage_tag_hours.c.tag_key).where(
            usage_tag_hours.c.project_id == project)).scalars())
        skipped = set(conn.execute(sa.select(usage_tag_skipped.c.tag_key).where(
            usage_tag_skipped.c.project_id == project)).scalars())
        return keys, skipped
    assert await store.database.read(kept) == ({"customer"}, {"request", "note"})
    for key in ("request", "note", "customer"):
        rollup, raw = await reports(store, project, usage_query(T0, T0 + timedelta(days=1), "hour", [key], []))
        assert_same(rollup, raw)
        assert sum(row.counters["total_tokens"] for row in raw) == 0 and len(raw) >= 2
    by_customer, _ = await reports(store, project, usage_query(T0, T0 + timedelta(days=1), "day", ["customer"],
                                                               ["calls"]))
    assert {row.groups["customer"]: row.counters["calls"] for row in by_customer} == {"acme": 1001, None: 1}


async def test_the_migration_fills_the_rollups_from_stored_spans(store: SqlStore, project: str) -> None:
    from alembic import command

    from taskgate.store.migrate import alembic_config

    rng = random.Random(12)
    await store.write_spans([random_span(rng, project, index) for index in range(300)])
    kept = rollup_rows(store, project)

    def migrate(revision: str) -> None:
        def run(conn: sa.Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, revision) if revision != "head" else command.upgrade(config, revision)
        store.database.transaction(run, write=True)

    await asyncio.to_thread(migrate, "0013")
    await asyncio.to_thread(migrate, "head")
    filled = rollup_rows(store, project)
    # keys, calls and tokens equal; costs (summed in another order) to float rounding
    assert [{**row, "cost": None} for row in filled] == [{**row, "cost": None} for row in kept]
    for mine, theirs in zip(filled, kept, strict=True):
        assert math.isclose(mine["cost"], theirs["cost"], rel_tol=1e-9, abs_tol=1e-12)
    for query in (random_query(rng) for _ in range(30)):
        assert_same(*await reports(store, project, query))
    # the triggers are back: a new span counts
    await store.write_spans([SpanRecord(id="after", trace_id="t", project_id=project, name="call",
                                        start_time=T0, cost=2.0, model_used="m")])
    rollup, raw = await reports(store, project, usage_query(T0, T0 + timedelta(hours=1), "hour", ["model"], []))
    assert_same(rollup, raw)
    assert {"model": "m"} in [row.groups for row in rollup]


def test_whole_hours_are_utc_hours_and_minutes_or_several_tags_read_raw() -> None:
    utc = usage_query(datetime(2026, 1, 1, 10, 15, tzinfo=UTC), datetime(2026, 1, 2, 3, 5, tzinfo=UTC), "day",
                      ["model"], [])
    assert whole_hours(utc) == (datetime(2026, 1, 1, 11, tzinfo=UTC), datetime(2026, 1, 2, 3, tzinfo=UTC))
    india = timedelta(hours=5, minutes=30)
    shifted = usage_query(datetime(2026, 1, 1, 10, 0, tzinfo=timezone(india)),
                          datetime(2026, 1, 1, 14, 0, tzinfo=timezone(india)), "hour", [], [])
    assert whole_hours(shifted) == (datetime(2026, 1, 1, 5, tzinfo=UTC), datetime(2026, 1, 1, 8, tzinfo=UTC))
    assert whole_hours(usage_query(T0, T0 + timedelta(days=1), "minute", [], [])) is None
    assert whole_hours(usage_query(T0, T0 + timedelta(days=1), "day", ["a", "b"], [])) is None
    assert whole_hours(usage_query(T0, T0 + timedelta(minutes=50), "day", [], [])) is None


async def test_hostile_tags_never_fail_a_write_and_report_as_raw_spans_do(store: SqlStore, project: str) -> None:
    """Keys a report cannot group by, values the rollup does not keep (one equal to the marker a value
    not kept is written as), unicode, deep and huge values: every write lands, every report agrees."""
    hostile: list[dict[str, Any]] = [
        {'quo"te': "a", "back\\slash": "b", "k" * 101: "c", "": "empty key", "dot.key[0]": "d"},
        {"deep": {"a": [{"b": [1, {"c": None}]}]}, "huge": "h" * 100_000, "marker": "~" * 101},
        {"uni": "ünïcødé ✓ 𝄞", "num": 2**62, "neg": -5, "big": 1.5e300, "flag": False, "marker": "ok"},
        {"uni": "<script>alert(1)</script>", "num": 0, "dot.key[0]": "d", "nul": None},
    ]
    spans = [SpanRecord(id=f"h{index}", trace_id="t", project_id=project, name="call",
                        start_time=T0 + timedelta(minutes=40 * index), cost=0.25 * (index + 1),
                        usage={"input_tokens": index}, tags=tags) for index, tags in enumerate(hostile * 3)]
    await store.write_spans(spans)
    for key in ("dot.key[0]", "deep", "huge", "marker", "uni", "num", "neg", "big", "flag", "nul", "missing"):
        for granularity in ("hour", "day"):
            query = usage_query(T0, T0 + timedelta(days=1), granularity, [key], ["calls"])
            rollup, raw = await reports(store, project, query)
            assert_same(rollup, raw)
            assert sum(row.counters["calls"] for row in rollup) == len(spans)
    skipped = await store.database.read(lambda conn: set(conn.execute(
        sa.select(usage_tag_skipped.c.tag_key).where(usage_tag_skipped.c.project_id == project)).scalars()))
    assert {"deep", "huge", "marker"} <= skipped and not {"uni", "num", "dot.key[0]"} & skipped
