"""`/v3/compat/responses` and `/v3/compat/openresponses` over HTTP against the fake upstreams:
the Response object, the streamed event sequence, spans and cost, and hostile bodies."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post

PATHS = ["/v3/compat/responses", "/v3/compat/openresponses"]
OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


def respond(server: ServerProcess, body: dict[str, Any], path: str = PATHS[0], **kw: Any) -> Reply:
    return post(server.url + path, body, **kw)


def events_of(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """(event line, data) per SSE event; each event's data repeats its name as `type`."""
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in reply.body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if lines:
            data = orjson.loads(lines["data"])
            assert lines["event"] == data["type"]
            out.append((lines["event"], data))
    return out


def span(server: ServerProcess, span_id: str) -> dict[str, Any]:
    reply = get(f"{server.url}/v3/spans/{span_id}")
    assert reply.status == 200, reply.body
    return dict(reply.json()["data"])


# ---- answers


@pytest.mark.parametrize("path", PATHS)
def test_plain_answer_is_a_response_object_with_span_and_cost(server: ServerProcess, fake: FakeProvider,
                                                              path: str) -> None:
    reply = respond(server, {"model": OPENAI, "input": "hi", "instructions": "Be brief.", "temperature": 0.3,
                             "max_output_tokens": 50, "metadata": {"k": "v"}}, path)
    assert reply.status == 200, reply.body
    body = reply.json()
    span_id = reply.headers["x-opper-span-id"]
    assert body["id"] == "resp_" + span_id.replace("-", "")
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["model"] == OPENAI and body["error"] is None and body["incomplete_details"] is None
    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    assert message["content"][0]["text"] == body["output_text"] == fake.default_text("gpt-4o-mini")
    assert body["instructions"] == "Be brief." and body["temperature"] == 0.3 and body["max_output_tokens"] == 50
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert body["cost"] > 0 and float(reply.headers["x-opper-cost"]) == body["cost"]
    sent = fake.requests[-1].json
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert sent["temperature"] == 0.3 and sent["max_completion_tokens"] == 50
    recorded = span(server, span_id)
    assert recorded["type"] == "responses" and recorded["name"] == "responses"
    assert recorded["cost"] == body["cost"] and recorded["model"] == OPENAI


def test_name_and_parent_headers_are_recorded(any_server: ServerProcess, fake: FakeProvider) -> None:
    server = any_server
    parent = respond(server, {"model": OPENAI, "input": "hi"}).headers["x-opper-span-id"]
    for path, stream in ((PATHS[0], False), (PATHS[1], True)):
        child = respond(server, {"model": ANTHROPIC, "input": "hi", "stream": stream, "tags": {"team": "a"}}, path,
                        headers={"X-Opper-Name": "support-bot", "X-Opper-Parent-Span-Id": parent})
        assert child.status == 200, child.body
        recorded = span(server, child.headers["x-opper-span-id"])
        assert recorded["name"] == "support-bot" and recorded["parent_id"] == parent
        assert recorded["tags"] == {"team": "a"} and recorded["model"] == ANTHROPIC
    missing = respond(server, {"model": OPENAI, "input": "hi"},
                      headers={"X-Opper-Parent-Span-Id": "00000000-0000-0000-0000-000000000000"})
    assert missing.status == 404


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_tool_round_trip_on_either_upstream(server: ServerProcess, fake: FakeProvider, model: str) -> None:
    upstream = model.split("/", 1)[1]
    fake.script(upstream, Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]),
                Behaviour(text="Sunny in Paris."))
    first = respond(server, {"model": model, "input": "Weather in Paris?", "tools": [WEATHER],
                             "tool_choice": {"type": "function", "name": "get_weather"}}).json()
    [call] = first["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["status"] == "completed"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert first["output_text"] == "" and first["tool_choice"] == {"type": "function", "name": "get_weather"}
    items = [{"role": "user", "content": "Weather in Paris?"}, *first["output"],
             {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]
    final = respond(server, {"model": model, "input": items, "tools": [WEATHER]})
    assert final.status == 200, final.body
    assert final.json()["output_text"] == "Sunny in Paris."
    sent = fake.requests[-1].json
    if model == OPENAI:
        assert sent["messages"][1]["tool_calls"][0]["id"] == call["call_id"]
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"}
        assert fake.requests[0].json["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    else:
        assert {"type": "tool_use", "id": call["call_id"], "name": "get_weather", "input": {"city": "Paris"}} \
            in sent["messages"][1]["content"]


def test_structured_output_is_validated_and_reasked(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"city": "Oslo"}), Behaviour(json={"city": "Oslo", "population": 7}))
    text = {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}}
    reply = respond(server, {"model": OPENAI, "input": "Oslo?", "text": text})
    assert reply.status == 200, reply.body
    assert orjson.loads(reply.json()["output_text"]) == {"city": "Oslo", "population": 7}
    assert reply.json()["text"] == text
    assert len(fake.requests) == 2
    fake.script("gpt-4o-mini", *[Behaviour(json={"city": 1})] * 5)
    failed = respond(server, {"model": OPENAI, "input": "Oslo?", "text": text})
    assert failed.status == 400 and failed.json()["error"]["code"] == "structured_generation_failed"


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_streamed_structured_output_is_held_until_valid(server: ServerProcess, fake: FakeProvider,
                                                         model: str) -> None:
    upstream = model.split("/", 1)[1]
    fake.script(upstream, Behaviour(json={"city": "Oslo"}), Behaviour(json={"city": "Oslo", "population": 7}))
    text = {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA}}
    events = events_of(respond(server, {"model": model, "input": "Oslo?", "text": text, "stream": True},
                               PATHS[1]))
    deltas = [data["delta"] for kind, data in events if kind == "response.output_text.delta"]
    assert len(deltas) == 1 and orjson.loads(deltas[0]) == {"city": "Oslo", "population": 7}
    assert events[-1][0] == "response.completed"
    assert orjson.loads(events[-1][1]["response"]["output_text"]) == {"city": "Oslo", "population": 7}
    assert len(fake.requests) == 2


def test_options_reach_the_upstream(server: ServerProcess, fake: FakeProvider) -> None:
    reply = respond(server, {"model": OPENAI, "input": "hi", "reasoning": {"effort": "low"}, "top_p": 0.5,
                             "text": {"format": {"type": "json_object"}, "verbosity": "low"},
                             "parallel_tool_calls": False, "store": False, "truncation": "disabled",
                             "include": [], "background": False, "user": "u1"})
    assert reply.status == 200, reply.body
    sent = fake.requests[-1].json
    assert sent["reasoning_effort"] == "low" and sent["top_p"] == 0.5 and sent["verbosity"] == "low"
    assert sent["response_format"] == {"type": "json_object"} and sent["user"] == "u1"
    assert reply.json()["reasoning"] == {"effort": "low", "summary": None}


def test_cut_answer_is_incomplete(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="partial", finish_reason="length"),
                Behaviour(text="partial", finish_reason="length"))
    body = respond(server, {"model": OPENAI, "input": "hi"}).json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    events = events_of(respond(server, {"model": OPENAI, "input": "hi", "stream": True}))
    assert events[-1][0] == "response.incomplete"


# ---- streaming


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_streamed_text_follows_the_documented_sequence(server: ServerProcess, fake: FakeProvider, model: str) -> None:
    reply = respond(server, {"model": model, "input": "hi", "stream": True})
    events = events_of(reply)
    kinds = [kind for kind, _ in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 1
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    text = "".join(data["delta"] for kind, data in events if kind == "response.output_text.delta")
    assert text == fake.default_text(model.split("/", 1)[1])
    completed = events[-1][1]["response"]
    assert completed["id"] == "resp_" + reply.headers["x-opper-span-id"].replace("-", "")
    assert completed["output_text"] == text and completed["usage"]["output_tokens"] > 0
    assert completed["output"][0]["id"] == events[2][1]["item"]["id"] == events[4][1]["item_id"]
    assert events[0][1]["response"]["status"] == "in_progress"
    assert span(server, reply.headers["x-opper-span-id"])["cost"] == completed["cost"]


def test_streamed_tool_calls_have_their_own_items(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(tool_calls=[("get_weather", {"city": "Paris"}),
                                                     ("get_weather", {"city": "Oslo"})]))
    events = events_of(respond(server, {"model": OPENAI, "input": "Weather?", "tools": [WEATHER], "stream": True}))
    added = [data for kind, data in events if kind == "response.output_item.added"]
    assert [(a["output_index"], a["item"]["type"], a["item"]["name"]) for a in added] == \
        [(0, "function_call", "get_weather"), (1, "function_call", "get_weather")]
    done = {data["output_index"]: data for kind, data in events if kind == "response.function_call_arguments.done"}
    for index, city in ((0, "Paris"), (1, "Oslo")):
        deltas = "".join(data["delta"] for kind, data in events
                         if kind == "response.function_call_arguments.delta" and data["output_index"] == index)
        assert json.loads(deltas) == json.loads(done[index]["arguments"]) == {"city": city}
    output = events[-1][1]["response"]["output"]
    assert [item["call_id"] for item in output] == [a["item"]["call_id"] for a in added]


def test_mid_stream_failure_ends_with_response_failed(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Once upon a time there was a gateway", fail_after=4))
    events = events_of(respond(server, {"model": OPENAI, "input": "hi", "stream": True}))
    kind, data = events[-1]
    assert kind == "response.failed"
    assert data["response"]["status"] == "failed" and data["response"]["error"]["message"]
    assert "response.output_text.delta" in [k for k, _ in events]


def test_errors_before_the_stream_are_plain_http_errors(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(status=400))
    reply = respond(server, {"model": OPENAI, "input": "hi", "stream": True})
    assert reply.status == 400 and reply.json()["error"]["message"]


# ---- hostile bodies

CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({}, "input"),
    ({"input": 3}, "input"),
    ({"input": []}, "input"),
    ({"input": [3]}, "input[0]"),
    ({"input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input_image"),
    ({"input": [{"type": "mystery"}]}, "input[0].type"),
    ({"input": [{"type": "response.output_text.delta", "delta": "x"}]}, "input[0].type"),
    ({"input": [{"type": "function_call_output", "call_id": ["c1"], "output": "x"}]}, "call_id"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "reasoning"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
    ({"input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]}, "has no function_call"),
    ({"input": [CALL]}, "no function_call_output"),
    ({"input": [CALL,
                {"role": "user", "content": "x"}]}, "no function_call_output"),
    ({"input": [CALL,
                {"type": "function_call_output", "call_id": "c1", "output": "x"},
                {"type": "function_call_output", "call_id": "c1", "output": "x"}]}, "answered already"),
    ({"input": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": {}}]}, "arguments"),
    ({"input": [{"type": "function_call", "call_id": "", "name": "f", "arguments": "{}"}]}, "call_id"),
    ({"input": [{"type": "function_call", "call_id": "c1", "name": "bad name", "arguments": "{}"}]}, "name"),
    ({"input": [CALL,
                {"type": "function_call_output", "call_id": "c1", "output": 7}]}, "output"),
    ({"input": "hi", "text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
    ({"input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"input": "hi", "text": {"format": "json"}}, "text.format.type"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "schema": {"type": "nonsense"}}}}, "schema"),
    ({"input": "hi", "text": {"colour": 1}}, "text.colour"),
    ({"input": "hi", "text": []}, "text"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"input": "hi", "tools": [WEATHER, WEATHER]}, "declared twice"),
    ({"input": "hi", "tools": {"a": 1}}, "tools"),
    ({"input": "hi", "tools": [{**WEATHER, "parameters": "x"}]}, "tools[0].parameters"),
    ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
    ({"input": "hi", "tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]}, "nope"),
    ({"input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": "hi", "tool_choice": "required"}, "tool_choice"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": "10"}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": 2**40}, "max_output_tokens"),
    ({"input": "hi", "temperature": "hot"}, "temperature"),
    ({"input": "hi", "reasoning": {"summary": "auto"}}, "reasoning.summary"),
    ({"input": "hi", "reasoning": {"effort": 3}}, "reasoning.effort"),
    ({"input": "hi", "reasoning": {"depth": 3}}, "reasoning.depth"),
    ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"input": "hi", "background": True}, "background"),
    ({"input": "hi", "include": ["reasoning.encrypted_content"]}, "include"),
    ({"input": "hi", "truncation": "auto"}, "truncation"),
    ({"input": "hi", "stream_options": {"include_obfuscation": True}}, "stream_options"),
    ({"input": "hi", "surprise": 1}, "surprise"),
    ({"input": "hi", "stream": "yes"}, "stream"),
    ({"input": "hi", "instructions": ["x"]}, "instructions"),
    ({"input": "hi", "model": "nowhere/model"}, "nowhere"),
    ({"input": "hi", "model": 7}, "model"),
]


@pytest.mark.parametrize("path", PATHS)
def test_bad_bodies_are_clear_400s(server: ServerProcess, fake: FakeProvider, path: str) -> None:
    for body, named in BAD_BODIES:
        for stream in (False, True):
            reply = respond(server, {"model": OPENAI, **body, "stream": body.get("stream", stream)}, path)
            assert reply.status == 400, (body, reply.status, reply.body)
            message = reply.json()["error"]["message"]
            assert named in message, (body, message)
    assert fake.requests == []


def test_malformed_json_deep_and_huge_bodies(server: ServerProcess, fake: FakeProvider) -> None:
    url = server.url + PATHS[0]
    assert post(url, raw=b"{not json").status == 400
    assert post(url, raw=b"[1, 2]").status == 400
    deep = b'{"input": [{"role": "user", "content": ' + b"[" * 5000 + b"]" * 5000 + b"}]}"
    assert post(url, raw=deep).status == 400
    huge = post(url, raw=b'{"input": "' + b"x" * (10 * 1024 * 1024 + 1) + b'"}')
    assert huge.status == 413
    assert post(url, {"input": "hi"}, key="wrong-key").status == 401
    assert fake.requests == []
