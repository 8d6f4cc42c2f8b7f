"""Span feedback, metrics, save_examples, v2 traces and v3 span events over raw HTTP, on SQLite and
Postgres: each capability end to end, right after the call that made the span (still unflushed),
and the hostile matrix (unknown and foreign ids, bad bodies and paging) as clear 4xx answers."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess, taskgate_command
from tests.http_client import Reply, get, post, request

_OTHER_KEYS: dict[str, str] = {}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def other_key(server: ServerProcess) -> str:
    """A key of another project on this server's store (made once per server)."""
    if server.url not in _OTHER_KEYS:
        _OTHER_KEYS[server.url] = subprocess.run(
            [*taskgate_command(), "keys", "create", "--project", "someone-else", "--data-dir", str(server.data_dir)],
            env=server.env, capture_output=True, text=True, check=True).stdout.strip()
    return _OTHER_KEYS[server.url]


def assert_error(reply: Reply, status: int, needle: str = "") -> None:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    assert needle in reply.json()["detail"]


def call_span(server: ServerProcess, fake: FakeProvider, name: str, answer: Any = None, **extra: Any) -> str:
    """A v2 call's span id, answered with `answer` (JSON) by the fake."""
    fake.script("gpt-4o-mini", Behaviour(json=answer if answer is not None else {"a": "yes"}))
    body = {"name": name, "input": {"q": "why"}, "output_schema": {"type": "object"}, **extra}
    reply = post(f"{server.url}/v2/call", body)
    assert reply.status == 200, reply.body
    return str(reply.json()["span_id"])


def examples_of(server: ServerProcess, name: str) -> list[dict[str, Any]]:
    reply = get(f"{server.url}/v3/functions/{quote(name, safe='')}/examples")
    assert reply.status == 200, reply.body
    return list(reply.json()["examples"])


def make_span(server: ServerProcess, **fields: Any) -> dict[str, Any]:
    reply = post(f"{server.url}/v2/spans", {"name": unique("span"), **fields})
    assert reply.status == 200, reply.body
    return dict(reply.json())


# ---- save_examples and feedback


def test_save_examples_copies_a_fresh_calls_span_into_its_functions_dataset(any_server: ServerProcess,
                                                                            fake: FakeProvider) -> None:
    name = unique("saver")
    span_id = call_span(any_server, fake, name, {"a": "saved"})
    reply = post(f"{any_server.url}/v2/spans/{span_id}/save_examples")  # the span is not flushed yet
    assert reply.status == 201, reply.body
    saved = reply.json()
    function = get(f"{any_server.url}/v3/functions/{quote(name, safe='')}").json()
    assert saved["dataset_id"] and saved["dataset_entry_id"]
    assert (saved["input"], saved["output"]) == ('{"q":"why"}', '{"a":"saved"}')
    assert [(e["input"], e["output"]) for e in examples_of(any_server, name)] == [({"q": "why"}, {"a": "saved"})]
    assert function["name"] == name
    assert post(f"{any_server.url}/spans/{span_id}/save_examples").status == 201  # served at the root too


def test_save_examples_refuses_a_span_without_a_function(any_server: ServerProcess) -> None:
    span = make_span(any_server, input="x", output="y")
    assert_error(post(f"{any_server.url}/v2/spans/{span['id']}/save_examples"), 400, "no dataset")


def test_feedback_is_shown_on_the_span_replaced_and_auto_saves_when_positive(any_server: ServerProcess,
                                                                              fake: FakeProvider) -> None:
    name = unique("rated")
    span_id = call_span(any_server, fake, name)
    low = post(f"{any_server.url}/v2/spans/{span_id}/feedback", {"score": 0.2, "comment": "meh"})
    assert low.status == 200, low.body
    assert low.json() == {"span_id": span_id, "score": 0.2, "example_saved": False, "comment": "meh"}
    assert examples_of(any_server, name) == []
    high = post(f"{any_server.url}/v2/spans/{span_id}/feedback", {"score": 1, "save_to_dataset": None}).json()
    assert high["example_saved"] is True and len(examples_of(any_server, name)) == 1
    shown = get(f"{any_server.url}/v2/spans/{span_id}").json()
    assert shown["feedback"] == {"score": 1.0, "comment": None}  # the second replaced the first
    never = post(f"{any_server.url}/v2/spans/{span_id}/feedback", {"score": 1, "save_to_dataset": False}).json()
    assert never["example_saved"] is False and len(examples_of(any_server, name)) == 1
    forced = post(f"{any_server.url}/v2/spans/{span_id}/feedback", {"score": 0, "save_to_dataset": True}).json()
    assert forced["example_saved"] is True and len(examples_of(any_server, name)) == 2
    feedback_events = get(f"{any_server.url}/v3/spans/{span_id}/events?kind=feedback").json()["data"]
    assert [(e["source"], e["data"]["score"]) for e in feedback_events] == [("human", 0.0)]


def test_a_span_without_feedback_shows_none(any_server: ServerProcess) -> None:
    span = make_span(any_server)
    assert get(f"{any_server.url}/v2/spans/{span['id']}").json()["feedback"] is None


def test_feedback_on_a_span_without_a_function(any_server: ServerProcess) -> None:
    span = make_span(any_server, output="y")
    auto = post(f"{any_server.url}/v2/spans/{span['id']}/feedback", {"score": 1}).json()
    assert auto["example_saved"] is False  # nothing to save to: auto-save skips it
    assert_error(post(f"{any_server.url}/v2/spans/{span['id']}/feedback", {"score": 1, "save_to_dataset": True}),
                 400, "no dataset")


@pytest.mark.parametrize(("body", "needle"), [
    ({}, "'score' is required"),
    ({"score": 1.5}, "from 0 to 1"),
    ({"score": -0.1}, "from 0 to 1"),
    ({"score": "high"}, "'score' must be a number"),
    ({"score": True}, "'score' must be a number"),
    ({"score": 1e30}, "from 0 to 1"),
    ({"score": 0.5, "comment": 5}, "'comment'"),
    ({"score": 0.5, "comment": "x" * 10_001}, "at most 10000"),
    ({"score": 0.5, "save_to_dataset": "yes"}, "'save_to_dataset'"),
])
def test_bad_feedback_bodies_are_422(server: ServerProcess, body: dict[str, Any], needle: str) -> None:
    span = make_span(server)
    assert_error(post(f"{server.url}/v2/spans/{span['id']}/feedback", body), 422, needle)


# ---- metrics


def test_metrics_lifecycle_and_paging(any_server: ServerProcess, fake: FakeProvider) -> None:
    span_id = call_span(any_server, fake, unique("measured"))
    base = f"{any_server.url}/v2/spans/{span_id}/metrics"
    created = [post(base, {"dimension": f"d{n}", "value": n / 10, "comment": "c" if n == 0 else None})
               for n in range(3)]
    assert [reply.status for reply in created] == [200, 200, 200]
    first = created[0].json()
    assert first["span_id"] == span_id and first["dimension"] == "d0" and first["value"] == 0.0
    assert first["comment"] == "c" and first["created_at"]
    listing = get(f"{base}?limit=2&offset=1").json()
    assert listing["meta"]["total_count"] == 3 and [m["dimension"] for m in listing["data"]] == ["d1", "d2"]
    assert get(f"{base}/{first['id']}").json() == first
    patched = request("PATCH", f"{base}/{first['id']}", {"value": 0.9, "comment": None}).json()
    assert (patched["dimension"], patched["value"], patched["comment"]) == ("d0", 0.9, None)
    evaluation = get(f"{any_server.url}/v3/spans/{span_id}/events?kind=evaluation").json()
    assert evaluation["meta"]["total_count"] == 3
    assert evaluation["data"][0]["data"] == {"dimension": "d0", "value": 0.9, "comment": None}
    assert request("DELETE", f"{base}/{first['id']}").status == 204
    assert_error(get(f"{base}/{first['id']}"), 404, "metric")
    assert_error(request("DELETE", f"{base}/{first['id']}"), 404, "metric")
    assert get(base).json()["meta"]["total_count"] == 2


@pytest.mark.parametrize(("body", "needle"), [
    ({"value": 1}, "required"),
    ({"dimension": "d"}, "required"),
    ({"dimension": 3, "value": 1}, "'dimension'"),
    ({"dimension": " ", "value": 1}, "'dimension'"),
    ({"dimension": "x" * 300, "value": 1}, "'dimension'"),
    ({"dimension": "d", "value": "1"}, "'value'"),
    ({"dimension": "d", "value": [1]}, "'value'"),
    ({"dimension": "d", "value": 1, "comment": {"a": 1}}, "'comment'"),
])
def test_bad_metric_bodies_are_422(server: ServerProcess, body: dict[str, Any], needle: str) -> None:
    span = make_span(server)
    assert_error(post(f"{server.url}/v2/spans/{span['id']}/metrics", body), 422, needle)


def test_bad_metric_patches_are_422(server: ServerProcess) -> None:
    span = make_span(server)
    metric = post(f"{server.url}/v2/spans/{span['id']}/metrics", {"dimension": "d", "value": 1}).json()
    url = f"{server.url}/v2/spans/{span['id']}/metrics/{metric['id']}"
    assert_error(request("PATCH", url, {"value": "high"}), 422, "'value'")
    assert_error(request("PATCH", url, [1]), 400, "object")


# ---- traces


def test_traces_list_and_get_as_1_7_2_reads_them(any_server: ServerProcess, fake: FakeProvider) -> None:
    root = make_span(any_server, name=unique("Pipeline"), input={"doc": 1})
    fake.script("gpt-4o-mini", Behaviour(json={"a": "x"}, usage={"prompt_tokens": 7, "completion_tokens": 3}))
    child = post(f"{any_server.url}/v2/call", {"name": unique("step"), "input": "hi", "parent_span_id": root["id"],
                                               "output_schema": {"type": "object"}, "tags": {"team": "a"}}).json()
    post(f"{any_server.url}/v2/spans/{child['span_id']}/metrics", {"dimension": "accuracy", "value": 0.5})
    listing = get(f"{any_server.url}/v2/traces?name={quote(root['name'].upper())}").json()
    assert listing["meta"]["total_count"] == 1
    [item] = listing["data"]
    assert item["id"] == root["trace_id"] and item["name"] == root["name"] and item["input"] == '{"doc":1}'
    assert item["total_tokens"] == 10 and item["status"] == "ok"
    trace = get(f"{any_server.url}/v2/traces/{root['trace_id']}").json()
    assert trace["id"] == root["trace_id"] and trace["total_tokens"] == 10
    spans = {span["id"]: span for span in trace["spans"]}
    call = spans[child["span_id"]]
    assert call["parent_id"] == root["id"] and call["data"]["total_tokens"] == 10
    assert call["data"]["model"] and call["data"]["tags"] == ["team:a"] and call["data"]["output"] == '{"a":"x"}'
    assert [(m["dimension"], m["value"]) for m in call["metrics"]] == [("accuracy", 0.5)]
    assert spans[root["id"]]["metrics"] == [] and spans[root["id"]]["data"]["function"] is None


def test_trace_paging_and_bad_paging(any_server: ServerProcess) -> None:
    prefix = unique("paged")
    for n in range(3):
        make_span(any_server, name=f"{prefix}-{n}", start_time=f"2026-01-0{n + 1}T00:00:00Z")
    page = get(f"{any_server.url}/v2/traces?name={prefix}&limit=1&offset=1").json()
    assert page["meta"]["total_count"] == 3 and [t["name"] for t in page["data"]] == [f"{prefix}-1"]
    assert len(get(f"{any_server.url}/v2/traces?name={prefix}&limit=100000").json()["data"]) == 3
    for bad in ("limit=-1", "offset=-5", "limit=abc", "offset=1.5", f"offset={2**40}"):
        assert_error(get(f"{any_server.url}/v2/traces?{bad}"), 400, "query parameter")
    assert_error(get(f"{any_server.url}/v2/traces?name={'x' * 1100}"), 400, "'name'")


# ---- v3 events


def test_v3_span_and_trace_events(any_server: ServerProcess) -> None:
    root = make_span(any_server)
    child = make_span(any_server, parent_id=root["id"])
    url = f"{any_server.url}/v3/spans/{child['id']}/events"
    made = post(url, {"kind": "guardrail", "source": "pii-check", "data": {"blocked": True}})
    assert made.status == 200, made.body
    event = made.json()["data"]
    assert (event["span_id"], event["kind"], event["source"], event["data"]) == (
        child["id"], "guardrail", "pii-check", {"blocked": True})
    post(f"{any_server.url}/v3/spans/{root['id']}/events", {"kind": "evaluation"})
    post(f"{any_server.url}/v2/spans/{root['id']}/feedback", {"score": 0.4})
    assert get(url).json()["data"] == [event]
    everything = get(f"{any_server.url}/v3/traces/{root['trace_id']}/events").json()
    assert [e["kind"] for e in everything["data"]] == ["guardrail", "evaluation", "feedback"]
    assert everything["data"][1]["source"] == "api" and everything["data"][1]["data"] == {}
    only = get(f"{any_server.url}/v3/traces/{root['trace_id']}/events?kind=feedback&limit=1").json()
    assert only["meta"]["total_count"] == 1 and only["data"][0]["data"] == {"score": 0.4, "comment": None}
    trace = get(f"{any_server.url}/v3/traces/{root['trace_id']}").json()
    assert [e["id"] for e in trace["events"]] == [e["id"] for e in everything["data"]]
    assert request("DELETE", f"{any_server.url}/v3/traces/{root['trace_id']}").status == 204
    assert_error(get(f"{any_server.url}/v3/traces/{root['trace_id']}/events"), 404, "trace")


@pytest.mark.parametrize(("body", "needle"), [
    ({}, "kind"),
    ({"kind": "praise"}, "kind"),
    ({"kind": "feedback", "data": [1]}, "data"),
    ({"kind": "feedback", "source": ""}, "source"),
    ({"kind": "feedback", "source": "x" * 300}, "source"),
])
def test_bad_v3_event_bodies_are_400(server: ServerProcess, body: dict[str, Any], needle: str) -> None:
    span = make_span(server)
    assert_error(post(f"{server.url}/v3/spans/{span['id']}/events", body), 400, needle)


# ---- ids nobody here owns


def _span_paths(span_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("POST", f"/v2/spans/{span_id}/save_examples", None),
        ("POST", f"/v2/spans/{span_id}/feedback", {"score": 1}),
        ("POST", f"/v2/spans/{span_id}/metrics", {"dimension": "d", "value": 1}),
        ("GET", f"/v2/spans/{span_id}/metrics", None),
        ("GET", f"/v2/spans/{span_id}/metrics/m1", None),
        ("PATCH", f"/v2/spans/{span_id}/metrics/m1", {"value": 1}),
        ("DELETE", f"/v2/spans/{span_id}/metrics/m1", None),
        ("POST", f"/v3/spans/{span_id}/events", {"kind": "feedback"}),
        ("GET", f"/v3/spans/{span_id}/events", None),
    ]


def test_unknown_and_foreign_spans_are_404(any_server: ServerProcess, fake: FakeProvider) -> None:
    theirs = call_span(any_server, fake, unique("theirs"))
    foreign_key = other_key(any_server)
    metric = post(f"{any_server.url}/v2/spans/{theirs}/metrics", {"dimension": "d", "value": 1})
    assert metric.status == 200
    trace_id = get(f"{any_server.url}/v2/spans/{theirs}").json()["trace_id"]
    for span_id in (theirs, "no-such-span"):
        for method, path, body in _span_paths(span_id):
            assert_error(request(method, any_server.url + path, body, key=foreign_key), 404)
    for path in (f"/v2/spans/{theirs}/metrics/{metric.json()['id']}", f"/v2/traces/{trace_id}",
                 f"/v3/traces/{trace_id}/events", "/v2/traces/no-such-trace"):
        assert_error(get(any_server.url + path, key=foreign_key), 404)
    assert theirs not in json.dumps(get(f"{any_server.url}/v2/traces", key=foreign_key).json())
    mine = make_span(any_server)
    assert_error(get(f"{any_server.url}/v2/spans/{mine['id']}/metrics/{metric.json()['id']}"), 404, "metric")


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b'"score"', b"", b"[" * 200 + b"]" * 200])
def test_malformed_bodies_are_4xx(server: ServerProcess, raw: bytes) -> None:
    span = make_span(server)
    for path in (f"/v2/spans/{span['id']}/feedback", f"/v2/spans/{span['id']}/metrics",
                 f"/v3/spans/{span['id']}/events"):
        reply = request("POST", server.url + path, raw=raw)
        assert 400 <= reply.status < 500 and reply.json()["detail"], (path, reply.body)
