"""The metrics' batching: what a drain writes equals what prometheus-client's own calls would have
written, labels stay bounded, and the span recorder hands every span to its hooks."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from starlette.routing import Route

from taskgate.ids import new_id
from taskgate.store.base import SpanRecord
from taskgate.store.database import Database, normalize_url
from taskgate.store.migrate import upgrade_to_head
from taskgate.store.sql import SqlStore
from taskgate.telemetry.metrics import BUCKETS, MAX_MODELS, Metrics, add_observations
from taskgate.telemetry.recorder import SpanRecorder


def test_added_observations_equal_observing_one_by_one() -> None:
    values = [random.Random(7).uniform(0, 200) for _ in range(500)] + [0.0, 0.001, 120.0, 1e9]
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("h", "h", ("a",), buckets=BUCKETS, registry=one_by_one)
    added = Histogram("h", "h", ("a",), buckets=BUCKETS, registry=batched)
    for amount in values:
        observed.labels("x").observe(amount)
    counts = [0] * len(BUCKETS)
    for amount in values:
        counts[next(i for i, bound in enumerate(BUCKETS) if amount <= bound)] += 1
    add_observations(added.labels("x"), counts, sum(values))
    strip = [line for line in generate_latest(one_by_one).decode().splitlines() if "_created" not in line]
    assert strip == [line for line in generate_latest(batched).decode().splitlines() if "_created" not in line]


def text_of(metrics: Metrics) -> str:
    metrics.drain()
    assert metrics.registry is not None
    return generate_latest(metrics.registry).decode()


def test_a_drain_counts_requests_by_template_and_upstream_calls_by_model() -> None:
    metrics = Metrics()
    route = Route("/v2/spans/{span_id}", lambda request: None)
    metrics.request({"path": "/v2/spans/abc", "method": "GET", "route": route}, 404, 0.002, None)
    metrics.request({"path": "/v2/call", "method": "POST"}, 200, 0.3, None)  # the exact-path table
    metrics.request({"path": "/../" + "a" * 1000, "method": "GET"}, 404, 0.001, "unmatched")
    metrics.upstream("openai", "gpt-4o-mini", 0.2, True)
    metrics.upstream("openai", "flaky", 0.1, False)
    metrics.fallback("openai", "flaky")
    text = text_of(metrics)
    assert 'route="/v2/spans/{span_id}",status="404"' in text and "/v2/spans/abc" not in text
    assert 'route="/v2/call",status="200"' in text and 'route="unmatched"' in text and "aaaa" not in text
    assert 'taskgate_upstream_errors_total{model="flaky",provider="openai"} 1.0' in text
    assert 'taskgate_fallbacks_total{model="flaky",provider="openai"} 1.0' in text
    assert 'taskgate_upstream_duration_seconds_count{model="gpt-4o-mini",provider="openai"} 1.0' in text
    assert text_of(metrics) == text  # a second drain adds nothing new


def test_spans_give_tokens_cost_reasks_and_cache_hits() -> None:
    metrics = Metrics()
    base = {"trace_id": new_id(), "project_id": "p", "name": "f", "model_used": "openai/gpt-4o-mini"}
    metrics.span(SpanRecord(id=new_id(), **base, usage={"input_tokens": 10, "output_tokens": 4}, cost=0.5,
                            attempts=3))
    metrics.span(SpanRecord(id=new_id(), **base, usage={"input_tokens": 10, "output_tokens": 4}, cost=0.5,
                            attempts=1, meta={"cached": True}))
    metrics.span(SpanRecord(id=new_id(), trace_id=new_id(), project_id="p", name="no model"))
    text = text_of(metrics)
    assert 'taskgate_tokens_total{direction="input",model="gpt-4o-mini",provider="openai"} 10.0' in text
    assert 'taskgate_tokens_total{direction="output",model="gpt-4o-mini",provider="openai"} 4.0' in text
    assert 'taskgate_cost_usd_total{model="gpt-4o-mini",provider="openai"} 0.5' in text
    assert 'taskgate_reasks_total{model="gpt-4o-mini",provider="openai"} 2.0' in text
    assert "taskgate_cache_hits_total 1.0" in text


def test_models_past_the_cap_are_other() -> None:
    metrics = Metrics()
    for index in range(MAX_MODELS + 50):
        metrics.upstream("openai", f"model-{index}", 0.1, True)
    text = text_of(metrics)
    assert 'model="other"' in text and 'model="model-199"' in text and 'model="model-200"' not in text
    assert 'taskgate_upstream_duration_seconds_count{model="other",provider="openai"} 50.0' in text


def test_watched_counts_become_gauges_and_counters() -> None:
    metrics = Metrics()
    depth, dropped = [3], [0]
    metrics.watch_queue("taskgate_test_depth", "d", lambda: depth[0])
    metrics.watch_total("taskgate_test_dropped", "d", lambda: dropped[0])
    dropped[0] = 5
    assert "taskgate_test_depth 3.0" in text_of(metrics) and "taskgate_test_dropped_total 5.0" in text_of(metrics)
    depth[0], dropped[0] = 0, 7
    text = text_of(metrics)
    assert "taskgate_test_depth 0.0" in text and "taskgate_test_dropped_total 7.0" in text


@pytest.mark.asyncio(loop_scope="session")
async def test_the_recorder_hands_spans_to_its_hooks_and_survives_a_failing_one(tmp_path: Path) -> None:
    database = Database(normalize_url(f"sqlite:///{tmp_path / 'hooks.db'}"))
    await asyncio.to_thread(upgrade_to_head, database)
    store = SqlStore(database)
    recorded: list[SpanRecord] = []
    written: list[SpanRecord] = []

    def failing(span: SpanRecord) -> None:
        raise RuntimeError("a broken hook")

    recorder = SpanRecorder(store, on_record=recorded.append, on_write_through=written.append)
    first, second = (SpanRecord(id=new_id(), trace_id=new_id(), project_id="p", name=name) for name in "ab")
    recorder.record(first)
    await recorder.write_through(second)
    assert recorded == [first] and written == [second]
    assert recorder.queue_depth == 1
    broken = SpanRecorder(store, on_record=failing)
    broken.record(first)  # never raises; the span is still written
    assert broken.queue_depth == 1
    await recorder.close()
    await broken.close()
    assert recorder.queue_depth == 0
    await store.close()
