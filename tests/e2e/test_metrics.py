"""`GET /metrics` of a real `taskgate serve`, parsed with prometheus-client's own text parser.

Each test reads the metrics before and after known calls and checks that the counters moved by
exactly what those calls did: a fake upstream that fails once (an error and a fallback), a cache
hit, a re-ask, tokens and cost as the calls reported them. Then the key, and hostile paths and
model names, which must never create a label value of their own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskgate.telemetry.metrics import MAX_MODELS, shared_metrics_dir
from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import get, post, request
from tests.prometheus_text import label_values, moved, samples_of, scrape, value


@pytest.fixture(scope="module")
def metered(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own, so no other test's calls move its counters."""
    with ServerProcess(fake_provider, tmp_path_factory.mktemp("metered")) as server:
        yield server


def call(server: ServerProcess, body: dict[str, Any]) -> dict[str, Any]:
    reply = post(f"{server.url}/v2/call", body)
    assert reply.status == 200, reply.body
    return dict(reply.json())


def test_counters_move_by_what_known_calls_did(metered: ServerProcess, fake: FakeProvider) -> None:
    before = scrape(metered)
    name = f"metered-{uuid.uuid4().hex[:8]}"
    # 1. the first model fails once (500): an upstream error and a fallback to the second.
    fake.script("flaky", Behaviour(status=500))
    fell_back = call(metered, {"name": name, "input": "a", "model": ["openai/flaky", "openai/gpt-4o-mini"]})
    assert fell_back["usage"]["input_tokens"] > 0
    # 2. a cached call, made twice: one upstream call, one cache hit.
    cached_body = {"name": name, "input": "b", "model": "openai/gpt-4o-mini",
                   "configuration": {"invocation.cache.ttl": 60}}
    first = call(metered, cached_body)
    second = call(metered, cached_body)
    assert second["cached"] is True
    # 3. an answer that misses the schema and is asked again.
    fake.script("gpt-4o-mini", Behaviour(json={"wrong": 1}, usage={"prompt_tokens": 11, "completion_tokens": 5}),
                Behaviour(json={"answer": "ok"}, usage={"prompt_tokens": 13, "completion_tokens": 7}))
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    reasked = call(metered, {"name": name, "input": "c", "model": "openai/gpt-4o-mini", "output_schema": schema})
    assert reasked["usage"] == {**reasked["usage"], "input_tokens": 24, "output_tokens": 12}
    missing = get(f"{metered.url}/v2/spans/{uuid.uuid4()}")
    assert missing.status == 404
    after = scrape(metered)

    mini = {"provider": "openai", "model": "gpt-4o-mini"}
    assert moved(before, after, "taskgate_upstream_errors_total", provider="openai", model="flaky") == 1
    assert moved(before, after, "taskgate_fallbacks_total", provider="openai", model="flaky") == 1
    assert moved(before, after, "taskgate_upstream_duration_seconds_count", provider="openai", model="flaky") == 1
    # fallback + first cached call + two attempts of the re-asked one
    assert moved(before, after, "taskgate_upstream_duration_seconds_count", **mini) == 4
    assert moved(before, after, "taskgate_upstream_errors_total", **mini) == 0
    assert moved(before, after, "taskgate_cache_hits_total") == 1
    assert moved(before, after, "taskgate_reasks_total", **mini) == 1
    spent = [fell_back, first, reasked]  # the cache hit spent nothing
    for direction in ("input", "output"):
        assert moved(before, after, "taskgate_tokens_total", **mini, direction=direction) == sum(
            body["usage"][f"{direction}_tokens"] for body in spent)
    assert moved(before, after, "taskgate_cost_usd_total", **mini) == pytest.approx(
        sum(body["cost"]["total"] for body in spent))
    route = {"route": "/v2/call", "method": "POST", "status": "200"}
    assert moved(before, after, "taskgate_http_request_duration_seconds_count", **route) == 4
    assert moved(before, after, "taskgate_http_request_duration_seconds_bucket", **route, le="+Inf") == 4
    assert moved(before, after, "taskgate_http_request_duration_seconds_sum", **route) > 0
    assert moved(before, after, "taskgate_http_request_duration_seconds_count",
                 route="/v2/spans/{span_id}", method="GET", status="404") == 1
    # the scrape before this one was itself a request
    assert moved(before, after, "taskgate_http_request_duration_seconds_count",
                 route="/metrics", method="GET", status="200") == 1
    assert value(after, "taskgate_span_queue_depth") >= 0
    assert value(after, "taskgate_spans_dropped_total") == 0


def test_streams_and_embeddings_are_upstream_calls_too(metered: ServerProcess, fake: FakeProvider) -> None:
    before = scrape(metered)
    fake.script("flaky-stream", Behaviour(status=503))
    stream = post(f"{metered.url}/v2/call/stream", {"name": "streamed", "input": "x",
                                                    "model": ["openai/flaky-stream", "openai/gpt-4o-mini"]})
    assert stream.status == 200, stream.body
    embedded = post(f"{metered.url}/v2/embeddings", {"input": ["a", "bb"], "model": "openai/text-embedding-3-small"})
    assert embedded.status == 200, embedded.body
    after = scrape(metered)
    assert moved(before, after, "taskgate_upstream_duration_seconds_count", provider="openai",
                 model="gpt-4o-mini") == 1
    assert moved(before, after, "taskgate_upstream_errors_total", provider="openai", model="flaky-stream") == 1
    assert moved(before, after, "taskgate_fallbacks_total", provider="openai", model="flaky-stream") == 1
    assert moved(before, after, "taskgate_upstream_duration_seconds_count", provider="openai",
                 model="text-embedding-3-small") == 1
    assert moved(before, after, "taskgate_tokens_total", provider="openai", model="text-embedding-3-small",
                 direction="input") == embedded.json()["usage"]["prompt_tokens"]
    assert moved(before, after, "taskgate_http_request_duration_seconds_count",
                 route="/v2/call/stream", method="POST", status="200") == 1


def test_name_picks_samples_and_other_parameters_are_refused(metered: ServerProcess) -> None:
    reply = get(f"{metered.url}/metrics?name[]=taskgate_cache_hits_total&name[]=taskgate_span_queue_depth")
    assert reply.status == 200
    names = {name for name, _ in samples_of(reply.body.decode())}
    assert names == {"taskgate_cache_hits_total", "taskgate_span_queue_depth"}
    for query in ("format=json", "name=x", "name[]=" + "a" * 201, "name[]=", "&".join(["name[]=a"] * 101),
                  "name[]=a&debug=1", "%00=1"):
        refused = get(f"{metered.url}/metrics?{query}")
        assert refused.status == 400, (query[:50], refused.body)
        assert refused.json()["error"]["type"] == "BadRequestError"


def test_histogram_buckets_are_cumulative_and_end_in_the_count(metered: ServerProcess, fake: FakeProvider) -> None:
    call(metered, {"name": "buckets", "input": "x", "model": "openai/gpt-4o-mini"})
    samples = scrape(metered)
    labels = {"route": "/v2/call", "method": "POST", "status": "200"}
    buckets = sorted(((float(dict(key)["le"]), count) for (name, key), count in samples.items()
                      if name == "taskgate_http_request_duration_seconds_bucket"
                      and {k: v for k, v in key if k != "le"} == labels))
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and counts[-1] == value(samples, "taskgate_http_request_duration_seconds_count",
                                                            **labels)


def test_metrics_need_a_key(metered: ServerProcess) -> None:
    for key in (None, "wrong-key", "", "x" * 5000):
        reply = get(f"{metered.url}/metrics", key=key)
        assert reply.status == 401, (key, reply.body)
        assert reply.json()["error"]["type"] == "UnauthorizedError"
    assert get(f"{metered.url}/metrics", key="test-key").status == 200
    assert get(f"{metered.url}/metrics", key=None, headers={"x-api-key": "test-key"}).status == 200
    wrong_method = request("POST", f"{metered.url}/metrics", {})
    assert wrong_method.status == 405 and "GET" in wrong_method.headers["allow"]


def test_public_metrics_and_metrics_turned_off(fake_provider: FakeProvider, tmp_path: Path) -> None:
    with ServerProcess(fake_provider, tmp_path / "public", env={"TASKGATE_METRICS_PUBLIC": "1"}) as public:
        samples = scrape(public, key=None)
        assert value(samples, "taskgate_http_request_duration_seconds_count",
                     route="/health", method="GET", status="200") >= 1
    with ServerProcess(fake_provider, tmp_path / "off", env={"TASKGATE_METRICS": "0"}) as off:
        reply = get(f"{off.url}/metrics")
        assert reply.status == 404 and reply.json()["error"]
        assert post(f"{off.url}/v2/call", {"name": "off", "input": "x"}).status == 200


def test_bad_metrics_settings_stop_serve(fake_provider: FakeProvider, tmp_path: Path) -> None:
    for env, variable in (({"TASKGATE_METRICS_PUBLIC": "perhaps"}, "TASKGATE_METRICS_PUBLIC"),
                          ({"TASKGATE_METRICS": "2"}, "TASKGATE_METRICS")):
        server = ServerProcess(fake_provider, tmp_path / variable, env=env, startup_timeout=20)
        with pytest.raises(RuntimeError, match=f"(?s)exited with 2.*{variable}"):
            server.start()


HOSTILE_PATHS = [
    "/" + "a" * 6000,
    "/v2/" + "x/" * 2000,
    "/v2/spans/" + "%2F" * 500,
    "/v2/call/%00%ff",
    "/%E2%80%AE%F0%9F%92%A9",
    "/../../etc/passwd",
    "/v2/functions/by-name/" + "n/" * 300,
    "/metrics/" + "z" * 100,
    "/v3/functions/" + "q" * 3000 + "/call",
]


def test_hostile_paths_never_make_a_label_value(metered: ServerProcess) -> None:
    before = scrape(metered)
    routes_before = label_values(before, "route")
    for path in HOSTILE_PATHS:
        for method in ("GET", "POST", "DELETE"):
            reply = request(method, metered.url + path, {} if method == "POST" else None)
            assert 300 <= reply.status < 500, (method, path[:80], reply.status)  # Starlette redirects `//`
    after = scrape(metered)
    new_routes = label_values(after, "route") - routes_before
    # Only templates the server serves, or `unmatched`: never a path a caller made up.
    assert all(route in ("unmatched", "/metrics") or "{" in route for route in new_routes), new_routes
    assert all(len(route) < 100 for route in label_values(after, "route"))
    assert not any("aaaa" in route or "zzzz" in route or "qqqq" in route or "%" in route
                   for route in label_values(after, "route"))
    assert moved(before, after, "taskgate_http_request_duration_seconds_count",
                 route="unmatched", method="GET", status="404") >= 1
    assert len(label_values(after, "status")) <= 12
    # a v3 function path is labelled with the operation it matched, not the catch-all route before it
    assert "/v3/functions/{name}/call" in label_values(after, "route")


def test_caller_chosen_model_names_are_capped(metered: ServerProcess, fake: FakeProvider) -> None:
    """Any model name reaches the upstream (which refuses or answers it): past MAX_MODELS distinct
    ones, they are all counted as `other`, so a caller cannot grow the series without bound."""
    tag = uuid.uuid4().hex[:6]
    for index in range(MAX_MODELS + 20):
        reply = post(f"{metered.url}/v2/call", {"name": "many", "input": "x", "model": f"openai/m-{tag}-{index}"})
        assert reply.status == 200, reply.body
    samples = scrape(metered)
    models = label_values(samples, "model")
    assert len(models) <= MAX_MODELS + 1 and "other" in models
    assert value(samples, "taskgate_upstream_duration_seconds_count", provider="openai", model="other") >= 20


def test_workers_sharing_a_metrics_directory_are_summed(fake_provider: FakeProvider, tmp_path: Path) -> None:
    """What `serve --workers N` sets up: the parent makes the directory (`shared_metrics_dir`) and puts
    it in every worker's PROMETHEUS_MULTIPROC_DIR. Two servers stand in for two workers here; a
    scrape of either shows the calls both answered."""
    directory = tmp_path / "data" / "metrics"
    directory.mkdir(parents=True)
    (directory / "counter_999999.db").write_bytes(b"left by an earlier run")
    shared = shared_metrics_dir(tmp_path / "data", None)
    assert shared == directory and not list(directory.iterdir())
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    with ServerProcess(fake_provider, tmp_path / "one", env=env) as one, \
            ServerProcess(fake_provider, tmp_path / "two", env=env) as two:
        for server, calls in ((one, 2), (two, 3)):
            for _ in range(calls):
                call(server, {"name": "worker", "input": "x", "model": "openai/gpt-4o-mini"})
        labels = {"route": "/v2/call", "method": "POST", "status": "200"}
        deadline = time.monotonic() + 10  # the other worker adds its counts within a drain interval
        while True:
            samples = scrape(one)
            if value(samples, "taskgate_http_request_duration_seconds_count", **labels) == 5 \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert value(samples, "taskgate_http_request_duration_seconds_count", **labels) == 5
        assert value(samples, "taskgate_upstream_duration_seconds_count", provider="openai", model="gpt-4o-mini") == 5
        assert value(scrape(two), "taskgate_http_request_duration_seconds_count", **labels) == 5
        assert value(samples, "taskgate_span_queue_depth") >= 0
