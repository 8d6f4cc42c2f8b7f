"""`GET /v2/analytics/usage` and `POST /v2/embeddings` over HTTP, on SQLite and Postgres, with their
hostile inputs: each a clear 4xx with a JSON error body."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, taskgate_command
from tests.http_client import Reply, get, post


def new_key(server: ServerProcess) -> str:
    """A key of a new project of this server (its store, SQLite or Postgres)."""
    command = [*taskgate_command(), "keys", "create", "--project", f"p-{uuid.uuid4().hex[:10]}",
               "--data-dir", str(server.data_dir)]
    return subprocess.run(command, env=server.env, capture_output=True, text=True, check=True).stdout.strip()


def usage(server: ServerProcess, key: str, **params: object) -> Reply:
    pairs = [(name, item) for name, value in params.items()
             for item in (value if isinstance(value, list) else [value])]
    return get(f"{server.url}/v2/analytics/usage?{urlencode(pairs)}", key=key)


def today() -> tuple[str, str]:
    now = datetime.now(UTC)
    return (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()


def test_usage_sums_calls_by_model_and_tag(any_server: ServerProcess, fake: FakeProvider) -> None:
    key = new_key(any_server)
    for model, customer in [("openai/gpt-4o-mini", "acme"), ("openai/gpt-4o-mini", "acme"),
                            ("anthropic/claude-haiku-4-5", "globex")]:
        reply = post(any_server.url + "/v2/call", {"name": "usage-fn", "input": "hi", "model": model,
                                                   "tags": {"customer": customer}}, key=key)
        assert reply.status == 200, reply.body
    start, end = today()
    by_model = usage(any_server, key, from_date=start, to_date=end, granularity="year", group_by="model",
                     fields=["input_tokens", "output_tokens"]).json()
    assert sorted(item["model"] for item in by_model) == ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    for item in by_model:
        assert isinstance(item["cost"], str) and float(item["cost"]) > 0
        assert item["total_tokens"] == item["input_tokens"] + item["output_tokens"] > 0
        assert datetime.fromisoformat(item["time_bucket"]).tzinfo is not None
    calls = usage(any_server, key, from_date=start, to_date=end, granularity="year",
                  group_by=["customer", "function"], fields="calls").json()
    assert sorted((item["customer"], item["function"], item["calls"]) for item in calls) == [
        ("acme", "usage-fn", 2), ("globex", "usage-fn", 1)]
    assert set(calls[0]) == {"time_bucket", "cost", "total_tokens", "calls", "customer", "function"}
    # other projects' usage is not seen, and the default range (this month) holds today
    assert usage(any_server, new_key(any_server)).json() == []
    assert sum(item["total_tokens"] for item in usage(any_server, key).json()) == sum(
        item["total_tokens"] for item in by_model)


def _totals(items: list[dict[str, Any]], key: str) -> dict[Any, tuple[int, int, float]]:
    """Calls, total tokens and cost per value of `key`, summed over the items' buckets."""
    totals: dict[Any, tuple[int, int, float]] = {}
    for item in items:
        calls, tokens, cost = totals.get(item[key], (0, 0, 0.0))
        totals[item[key]] = (calls + item["calls"], tokens + item["total_tokens"], cost + float(item["cost"]))
    return totals


def test_usage_from_hourly_rollups_equals_usage_by_the_minute(any_server: ServerProcess, fake: FakeProvider) -> None:
    """Whole hours are answered from the rollups, partial hours and minutes from the spans: by model, by
    function and by a tag, the two agree (calls and tokens exactly, cost to float rounding)."""
    key = new_key(any_server)
    for name, model, tags in [("fn-a", "openai/gpt-4o-mini", {"customer": "acme"}),
                              ("fn-a", "openai/gpt-4o-mini", {"customer": "acme", "tier": 1}),
                              ("fn-b", "anthropic/claude-haiku-4-5", {"customer": "globex"}),
                              ("fn-b", "openai/gpt-4o-mini", {})]:
        reply = post(any_server.url + "/v2/call", {"name": name, "input": "hi", "model": model, "tags": tags},
                     key=key)
        assert reply.status == 200, reply.body
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    ranges = [(hour - timedelta(hours=1), hour + timedelta(hours=2)),  # whole hours: rollups alone
              (now - timedelta(minutes=90), now + timedelta(minutes=1))]  # partial hours at the ends too
    expected = {"model": {"openai/gpt-4o-mini": 3, "anthropic/claude-haiku-4-5": 1},
                "function": {"fn-a": 2, "fn-b": 2}, "customer": {"acme": 2, "globex": 1, None: 1}}
    for start, end in ranges:
        window = {"from_date": start.isoformat(), "to_date": end.isoformat(), "fields": "calls"}
        for group, calls in expected.items():
            by_day = usage(any_server, key, granularity="day", group_by=group, **window).json()
            by_minute = usage(any_server, key, granularity="minute", group_by=group, **window).json()
            rolled, raw = _totals(by_day, group), _totals(by_minute, group)
            assert {value: figures[0] for value, figures in rolled.items()} == calls
            assert {value: figures[:2] for value, figures in rolled.items()} == {
                value: figures[:2] for value, figures in raw.items()}
            for value, figures in rolled.items():
                assert abs(figures[2] - raw[value][2]) <= 1e-9 * max(1.0, abs(figures[2]))


def test_usage_at_the_root_path(server: ServerProcess) -> None:
    reply = get(server.url + "/analytics/usage?granularity=hour")
    assert reply.status == 200 and isinstance(reply.json(), list)


@pytest.mark.parametrize(("params", "needle"), [
    ({"from_date": "yesterday"}, "from_date"),
    ({"to_date": "2026-13-01T00:00:00"}, "to_date"),
    ({"from_date": "2026-02-01T00:00:00Z", "to_date": "2026-01-01T00:00:00Z"}, "before"),
    ({"granularity": "week"}, "granularity"),
    ({"granularity": ["x" * 10_000]}, "granularity"),
    ({"from_date": "2025-01-01T00:00:00Z", "to_date": "2026-01-01T00:00:00Z", "granularity": "minute"}, "buckets"),
    ({"from_date": "0001-01-01T00:00:00Z", "to_date": "9999-12-31T00:00:00Z", "granularity": "hour"}, "buckets"),
    ({"group_by": ["a", "b", "c", "d", "e", "f"]}, "at most"),
    ({"group_by": 'a"b'}, "quotes"),
    ({"group_by": "x" * 5000}, "group_by"),
    ({"group_by": "cost"}, "already has"),
    ({"fields": "price"}, "fields"),
])
def test_usage_refuses_bad_queries(any_server: ServerProcess, params: dict[str, object], needle: str) -> None:
    reply = usage(any_server, any_server.api_key, **params)
    assert reply.status == 400, reply.body
    assert needle in reply.json()["detail"]


def test_usage_needs_a_key(server: ServerProcess) -> None:
    assert get(server.url + "/v2/analytics/usage", key=None).status == 401


def test_v2_embeddings_are_priced_and_recorded(any_server: ServerProcess, fake: FakeProvider) -> None:
    key = new_key(any_server)
    url = any_server.url + "/v2/embeddings"
    reply = post(url, {"input": ["a", "bb"], "model": "openai/text-embedding-3-small"}, key=key)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model"] == "openai/text-embedding-3-small"
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert all(isinstance(value, float) for value in body["data"][0]["embedding"])
    assert body["usage"]["total_tokens"] > 0
    one = post(url, {"input": "a", "model": {"name": "openai/text-embedding-3-small", "options": {"dimensions": 3}}},
               key=key)
    assert one.status == 200 and len(one.json()["data"][0]["embedding"]) == 3
    assert fake.requests[-1].json["dimensions"] == 3
    start, end = today()
    [item] = usage(any_server, key, from_date=start, to_date=end, granularity="day", group_by="model",
                   fields=["calls", "input_tokens"]).json()
    assert (item["model"], item["calls"]) == ("openai/text-embedding-3-small", 2)
    assert item["input_tokens"] == item["total_tokens"] > 0


@pytest.mark.parametrize(("body", "needle"), [
    ({"model": "openai/text-embedding-3-small"}, "input"),
    ({"input": [], "model": "openai/text-embedding-3-small"}, "input"),
    ({"input": [1, 2], "model": "openai/text-embedding-3-small"}, "input"),
    ({"input": "a", "model": 7}, "model"),
    ({"input": "a", "model": ["openai/a", "openai/b"]}, "fallback"),
    ({"input": "a", "model": {"name": 5}}, "model"),
    ({"input": "a", "model": {"name": "openai/x", "options": {"temperature": 1}}}, "options"),
    ({"input": "a", "model": {"name": "openai/x", "options": {"dimensions": -1}}}, "dimensions"),
    ({"input": "a", "model": {"name": "openai/x", "options": "big"}}, "options"),
    ({"input": "a", "model": {"name": "openai/x", "extra_headers": {"x-a": "b"}}}, "extra_headers"),
    ({"input": "a", "model": "no-provider"}, "provider"),
    ({"input": "a", "model": "nowhere/model"}, "nowhere"),
    ({"input": "a"}, "azure"),  # the default model needs the azure preset, which this server lacks
])
def test_v2_embeddings_refuse_bad_bodies(any_server: ServerProcess, body: dict[str, object], needle: str) -> None:
    reply = post(any_server.url + "/v2/embeddings", body)
    assert reply.status == 400, reply.body
    assert needle in reply.json()["detail"]


def test_v2_embeddings_bounded_inputs(server: ServerProcess) -> None:
    url = server.url + "/v2/embeddings"
    huge = post(url, {"input": "x" * (11 * 1024 * 1024), "model": "openai/text-embedding-3-small"})
    assert huge.status == 413
    deep = post(url, raw=b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert deep.status == 400 and "type" in deep.json()
    assert post(url, raw=b"not json").status == 400
    assert post(url, [1, 2]).status == 400
