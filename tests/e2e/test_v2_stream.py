"""`POST /v2/call/stream` end to end: SSE framing, text and json_path deltas, failures, cancellation."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from taskgate.api.v2.calls import v2_frames
from taskgate.engine.task import Event, Finished, Result, Started, TextDelta
from tests.fakes.common import Behaviour
from tests.http_client import get, post, sse_events

PEOPLE = {
    "type": "object",
    "properties": {
        "people": {"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                           "meta": {"type": "object", "properties": {"age": {"type": "integer"},
                                                                     "active": {"type": "boolean"}}}},
            "required": ["name", "role", "meta"]}},
        "summary": {"type": "string"},
    },
    "required": ["people", "summary"],
}
ANSWER = {"people": [{"name": "John Doe", "role": "Engineer", "meta": {"age": 41, "active": True}},
                     {"name": "Ann \"Q\" Lee", "role": "Designer ✏️", "meta": {"age": 29, "active": False}}],
          "summary": "Two people.\nBoth busy."}


def stream(server, body, **kw):
    reply = post(f"{server.url}/v2/call/stream", body, **kw)
    return reply, [json.loads(e) for e in sse_events(reply)] if reply.status == 200 else []


def glue(events):
    """Concatenate string deltas per path, as a UI would; scalars are set."""
    out: dict[str, object] = {}
    for e in events:
        if e.get("chunk_type") == "json":
            path, delta = e["json_path"], e["delta"]
            out[path] = out.get(path, "") + delta if isinstance(delta, str) else delta
    return out


def test_text_stream_framing(server, fake):
    fake.script("gpt-4o-mini", Behaviour(event_delay_s=0.005))  # tokens apart, as a model makes them
    reply, events = stream(server, {"name": "writer", "input": "x", "model": "openai/gpt-4o-mini"})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["cache-control"] == "no-cache" and reply.headers["x-accel-buffering"] == "no"
    raw = reply.body.decode()
    assert "[DONE]" not in raw and "event:" not in raw
    assert list(events[0]) == ["span_id"]
    deltas = events[1:]
    assert len(deltas) > 3 and all(e["chunk_type"] == "text" for e in deltas)
    text = "".join(e["delta"] for e in deltas)
    assert text == "Hello from gpt-4o-mini! This is a fake reply."
    span = get(f"{server.url}/v3/spans/{events[0]['span_id']}").json()["data"]
    assert span["output"] == text and span["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_structured_stream_json_paths_for_nested_objects_and_arrays(server, fake, model):
    fake.script(model.split("/")[1], Behaviour(json=ANSWER))
    reply, events = stream(server, {"name": "people", "input": "x", "output_schema": PEOPLE, "model": model})
    assert reply.status == 200
    glued = glue(events)
    assert glued == {
        "response.people[0].name": "John Doe", "response.people[0].role": "Engineer",
        "response.people[0].meta.age": 41, "response.people[0].meta.active": True,
        "response.people[1].name": "Ann \"Q\" Lee", "response.people[1].role": "Designer ✏️",
        "response.people[1].meta.age": 29, "response.people[1].meta.active": False,
        "response.summary": "Two people.\nBoth busy.",
    }
    name_fragments = [e for e in events if e.get("json_path") == "response.people[0].name"]
    assert len(name_fragments) >= 1
    span = get(f"{server.url}/v3/spans/{events[0]['span_id']}").json()["data"]
    assert span["output"] == ANSWER


def test_failure_before_the_first_token_falls_back(server, fake):
    fake.script("gpt-4o", Behaviour(status=500))
    reply, events = stream(server, {"name": "fb", "input": "x", "model": ["openai/gpt-4o", "openai/gpt-4o-mini"]})
    assert reply.status == 200
    assert "".join(e.get("delta", "") for e in events[1:]).startswith("Hello from gpt-4o-mini")


def test_every_model_failing_before_output_is_a_plain_http_error(server, fake):
    fake.script("gpt-4o", Behaviour(status=503))
    reply, _ = stream(server, {"name": "fb", "input": "x", "model": "openai/gpt-4o"})
    assert reply.status == 502 and reply.json()["detail"]


@pytest.mark.parametrize("failure", [Behaviour(cut_after=4), Behaviour(fail_after=4)])
def test_upstream_failure_after_output_ends_with_an_error_chunk(server, fake, failure):
    fake.script("gpt-4o-mini", failure)
    reply, events = stream(server, {"name": "cut", "input": "x", "model": ["openai/gpt-4o-mini", "openai/gpt-4o"]})
    assert reply.status == 200
    assert events[-1]["chunk_type"] == "error" and events[-1]["error_message"]
    assert any(e.get("chunk_type") == "text" for e in events)
    assert all(r.model == "gpt-4o-mini" for r in fake.requests)  # no fallback once output has started
    span = get(f"{server.url}/v3/spans/{events[0]['span_id']}").json()["data"]
    assert span["status"] == "error" and span["error"]


def test_final_schema_failure_is_an_error_chunk_never_a_success(server, fake):
    fake.script("gpt-4o-mini", Behaviour(json={"people": [], "summary": 5}))
    _, events = stream(server, {"name": "bad", "input": "x", "output_schema": PEOPLE,
                                    "model": "openai/gpt-4o-mini"})
    assert events[-1]["chunk_type"] == "error"
    assert events[-1]["error_type"] == "StructuredGenerationError"


def test_a_misfit_answer_that_streamed_nothing_is_asked_again_like_a_call(server, fake):
    fake.script("gpt-4o-mini", Behaviour(text=""), Behaviour(json=ANSWER))  # the first answer is empty
    _, events = stream(server, {"name": "reasked", "input": "x", "output_schema": PEOPLE,
                                "model": "openai/gpt-4o-mini"})
    assert all(e.get("chunk_type") != "error" for e in events)
    assert glue(events)["response.summary"] == ANSWER["summary"]
    assert len(fake.requests) == 2
    assert "not valid JSON" in fake.requests[1].json["messages"][-1]["content"]
    span = get(f"{server.url}/v3/spans/{events[0]['span_id']}").json()["data"]
    assert span["status"] == "ok" and span["attempts"] == 2


def test_cache_hit_replays_as_a_stream(server, fake):
    body = {"name": "cached-stream", "input": "x", "output_schema": PEOPLE, "model": "openai/gpt-4o-mini",
            "configuration": {"invocation.cache.ttl": 60}}
    fake.script("gpt-4o-mini", Behaviour(json=ANSWER))
    _, first = stream(server, body)
    _, second = stream(server, body)
    assert len(fake.requests) == 1
    assert glue(second) == glue(first)


def test_client_disconnect_cancels_upstream_and_marks_the_span(server, fake):
    fake.script("gpt-4o-mini", Behaviour(text=" ".join(["word"] * 200), event_delay_s=0.05))
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/v2/call/stream", body=json.dumps({"name": "leaver", "input": "x",
                                                             "model": "openai/gpt-4o-mini"}),
                 headers={"Authorization": "Bearer test-key", "Content-Type": "application/json"})
    resp = conn.getresponse()
    first = resp.readline().decode()
    span_id = json.loads(first.split("data:", 1)[1])["span_id"]
    resp.readline()
    assert resp.readline().startswith(b"data:")  # a delta has started flowing
    conn.sock.close()
    conn.close()
    assert fake.wait_disconnects(1, timeout=10)
    deadline = time.time() + 10
    status = None
    while time.time() < deadline:
        reply = get(f"{server.url}/v3/spans/{span_id}")
        if reply.status == 200:
            status = reply.json()["data"]["status"]
            if status == "cancelled":
                break
        time.sleep(0.2)
    assert status == "cancelled"


def test_bad_input_on_stream_is_a_plain_http_error(server, fake):
    reply, _ = stream(server, {"name": "x", "output_schema": {"type": "nope"}})
    assert reply.status == 400 and reply.headers["content-type"].startswith("application/json")


async def _writes(events: list[Event], structured: bool) -> list[list[dict[str, object]]]:
    """The payloads of each write `v2_frames` makes for these engine events."""

    async def rest():  # type: ignore[no-untyped-def]
        for event in events[1:]:
            yield event

    return [[json.loads(block[len("data: "):]) for block in frame.decode().strip().split("\n\n")]
            async for frame in v2_frames(events[0], rest(), structured)]


async def test_the_span_id_rides_with_the_first_delta_in_one_write() -> None:
    result = Result(span_id="s1", trace_id="t1", text=None, payload={"title": "Hi"})
    writes = await _writes([Started("s1", "t1"), TextDelta('{"ti'), TextDelta('tle": "H'), TextDelta('i"}'),
                            Finished(result)], structured=True)
    # '{"ti' makes no delta yet: the span id waits for one rather than going out alone
    assert writes == [[{"span_id": "s1"}, {"delta": "H", "json_path": "response.title", "chunk_type": "json"}],
                      [{"delta": "i", "json_path": "response.title", "chunk_type": "json"}]]
    text = await _writes([Started("s2", "t2"), TextDelta("Hel"), TextDelta("lo")], structured=False)
    assert text == [[{"span_id": "s2"}, {"delta": "Hel", "chunk_type": "text"}],
                    [{"delta": "lo", "chunk_type": "text"}]]
    assert await _writes([Started("s3", "t3"), TextDelta("")], structured=True) == [[{"span_id": "s3"}]]
