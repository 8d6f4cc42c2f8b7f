"""The compat dialect's request parsing and chunk shaping, without a server (fast, exhaustive on shape)."""

from __future__ import annotations

import base64
import http.client
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from taskgate.api.openai.chat_request import parse_chat_request
from taskgate.api.openai.chat_stream import ChunkStream, chunk_frames, completion_body
from taskgate.api.openai.embeddings import embedding_body, parse_embedding_request
from taskgate.engine.task import Event, Failed, Finished, Result, Started, TextDelta, ToolCallDelta
from taskgate.errors import BadRequestError, UpstreamUnavailableError
from taskgate.providers.base import EmbeddingResponse, ToolCall, Usage
from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post, sse_events
from tests.media_samples import PNG_URL

USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def parse(body: dict[str, Any], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_chat_request(body, headers or {}, "p1", "openai/default-model")


def test_minimal_body_becomes_a_chat_task() -> None:
    call = parse({"messages": USER, "model": "openai/gpt-4o-mini"})
    task = call.task
    assert task.messages == USER
    assert [m.name for m in task.models] == ["openai/gpt-4o-mini"]
    assert task.function_name == "chat"
    assert task.span_type == "chat"
    assert task.record_function is False
    assert task.options == {}
    assert call.stream is False and call.include_usage is False


def test_opper_extras_and_pass_through_options() -> None:
    body = {
        "messages": USER,
        "model": {"name": "anthropic/claude-haiku-4-5", "options": {"temperature": 0.1}},
        "fallback_models": ["openai/gpt-4o-mini"],
        "temperature": 0.5, "max_tokens": 20, "stop": ["\n"], "seed": 3, "user": "u1",
        "reasoning_effort": "low", "logit_bias": {"50256": -100},
        "tags": {"team": "a"}, "parent_span_id": "body-parent",
        "span_uuid": "ignored", "some_future_field": {"x": 1},
        "stream": True, "stream_options": {"include_usage": True},
    }
    call = parse(body, {"x-opper-name": "my-chat", "x-opper-parent-span-id": "header-parent"})
    task = call.task
    assert [m.name for m in task.models] == ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    assert task.models[0].options == {"temperature": 0.1}
    assert task.options == {"temperature": 0.5, "max_tokens": 20, "stop": ["\n"], "seed": 3, "user": "u1",
                            "reasoning_effort": "low", "logit_bias": {"50256": -100}}
    assert task.function_name == "my-chat"
    assert task.parent_span_id == "header-parent"
    assert task.tags == {"team": "a"}
    assert call.stream and call.include_usage
    assert call.model_label == "anthropic/claude-haiku-4-5"
    assert parse({"messages": USER, "parent_span_id": "body-parent"}).task.parent_span_id == "body-parent"
    assert parse({"messages": USER}).model_label == "openai/default-model"


def test_response_format_variants() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    by_format = parse({"messages": USER, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}})
    assert by_format.task.output_schema == schema
    assert "response_format" not in by_format.task.options
    assert parse({"messages": USER, "output_schema": schema}).task.output_schema == schema
    json_mode = parse({"messages": USER, "response_format": {"type": "json_object"}}).task
    assert json_mode.output_schema is None
    assert json_mode.options["response_format"] == {"type": "json_object"}
    assert parse({"messages": USER, "response_format": {"type": "text"}}).task.options == {}


def test_tool_round_trip_messages_are_accepted() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    call = parse({"messages": messages, "tools": [TOOL], "tool_choice": {
        "type": "function", "function": {"name": "get_weather"}}})
    assert call.task.tools == [TOOL]
    assert call.task.tool_choice == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "messages must be a non-empty array"),
    ({"messages": []}, "messages must be a non-empty array"),
    ({"messages": "hi"}, "messages must be a non-empty array"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content is required"),
    ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content must be"),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "only allowed on assistant"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]}]},
     "tool_calls[0] must be an object with a string 'id'"),
    ({"messages": USER, "tools": {"type": "function"}}, "tools must be an array"),
    ({"messages": USER, "tools": [{"type": "retrieval"}]}, "tools[0] must be an object with type 'function'"),
    ({"messages": USER, "tools": [{"type": "function", "function": {"name": "bad name"}}]},
     "tools[0].function.name must match"),
    ({"messages": USER, "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
     "parameters must be a JSON Schema object"),
    ({"messages": USER, "tools": [TOOL, TOOL]}, "declared twice"),
    ({"messages": USER, "tool_choice": "sometimes"}, "tool_choice must be"),
    ({"messages": USER, "tool_choice": "required"}, "needs tools"),
    ({"messages": USER, "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
     "not in tools"),
    ({"messages": USER, "model": 7}, "model[0]"),
    ({"messages": USER, "fallback_models": "openai/x"}, "fallback_models must be an array"),
    ({"messages": USER, "temperature": "hot"}, "temperature must be a number"),
    ({"messages": USER, "max_tokens": 1.5}, "max_tokens must be an integer"),
    ({"messages": USER, "stop": [1]}, "stop must be"),
    ({"messages": USER, "n": 0}, "n must be an integer from 1 to 16"),
    ({"messages": USER, "n": 17}, "n must be an integer from 1 to 16"),
    ({"messages": USER, "n": True}, "n must be an integer"),
    ({"messages": USER, "n": "2"}, "n must be an integer"),
    ({"messages": USER, "stream": "yes"}, "stream must be a boolean"),
    ({"messages": USER, "tags": ["a"]}, "tags must be an object"),
    ({"messages": USER, "response_format": {"type": "xml"}}, "response_format.type"),
    ({"messages": USER, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "json_schema.schema"),
])
def test_bad_bodies_are_named_400s(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse(body)
    assert caught.value.status == 400
    assert fragment in caught.value.detail


def _result(**fields: Any) -> Result:
    base: dict[str, Any] = {"span_id": "0e6c-11", "trace_id": "t", "text": "hello", "model": "openai/m",
                            "usage": Usage(input_tokens=5, output_tokens=2, reasoning_tokens=1, cache_read_tokens=3),
                            "cost": 0.25}
    base.update(fields)
    return Result(**base)


def test_completion_body_shapes() -> None:
    body = completion_body([_result()], structured=False)
    assert body["id"] == "chatcmpl-0e6c11"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hello", "refusal": None}
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                             "prompt_tokens_details": {"cached_tokens": 3},
                             "completion_tokens_details": {"reasoning_tokens": 1}}
    assert body["cost"] == 0.25
    tools = completion_body([_result(text="", finish_reason="tool_calls",
                                     tool_calls=[ToolCall("call_1", "f", '{"a":1}')])], structured=False)
    message = tools["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_1", "type": "function",
                                      "function": {"name": "f", "arguments": '{"a":1}'}}]
    assert tools["choices"][0]["finish_reason"] == "tool_calls"
    structured = completion_body([_result(text=None, payload={"a": 1})], structured=True)
    assert orjson.loads(structured["choices"][0]["message"]["content"]) == {"a": 1}


def test_completion_body_of_several_choices_sums_usage_and_cost() -> None:
    logprobs = [{"token": "hi", "logprob": -0.1, "bytes": [104, 105], "top_logprobs": []}]
    body = completion_body([_result(), _result(text="bye", logprobs=logprobs)], structured=False)
    assert [(c["index"], c["message"]["content"]) for c in body["choices"]] == [(0, "hello"), (1, "bye")]
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][1]["logprobs"] == {"content": logprobs, "refusal": None}
    assert body["usage"]["prompt_tokens"] == 10 and body["usage"]["completion_tokens"] == 4
    assert body["cost"] == 0.5
    assert completion_body([_result(), _result(cost=None)], structured=False)["cost"] is None


async def _frames(events: list[Any], include_usage: bool = False) -> list[Any]:
    async def source():  # type: ignore[no-untyped-def]
        for event in events[1:]:
            yield event

    out = []
    async for frame in chunk_frames(events[0], source(), ChunkStream("ab-cd", "openai/m", include_usage)):
        text = frame.decode()  # one write: the frames of one engine event
        assert text.startswith("data: ") and text.endswith("\n\n")
        for block in text[:-2].split("\n\n"):
            assert block.startswith("data: ") and "\n" not in block
            payload = block[len("data: "):]
            out.append(payload if payload == "[DONE]" else orjson.loads(payload))
    return out


async def test_stream_chunks_renumber_tools_and_end_with_usage_and_done() -> None:
    result = _result(text="", finish_reason="tool_calls")
    frames = await _frames([
        Started("ab-cd", "t"),
        TextDelta("Let me check. "),
        ToolCallDelta(1, "toolu_a", "get_weather", ""),
        ToolCallDelta(3, "toolu_b", "get_time", '{"tz"'),
        ToolCallDelta(1, None, None, '{"city": "Paris"}'),
        ToolCallDelta(3, None, None, ': "UTC"}'),
        Finished(result),
    ], include_usage=True)
    assert frames[-1] == "[DONE]"
    chunks = frames[:-1]
    assert all(chunk["id"] == "chatcmpl-abcd" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Let me check. "}
    deltas = [chunk["choices"][0]["delta"]["tool_calls"][0] for chunk in chunks[2:7]]
    assert deltas == [
        {"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        {"index": 1, "function": {"arguments": '{"tz"'}},
        {"index": 0, "function": {"arguments": '{"city": "Paris"}'}},
        {"index": 1, "function": {"arguments": ': "UTC"}'}},
    ]
    assert chunks[7]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": None}]
    assert chunks[8]["choices"] == []
    assert chunks[8]["usage"]["total_tokens"] == 7
    assert chunks[8]["cost"] == 0.25
    assert len(chunks) == 9


async def test_stream_failure_after_output_is_an_error_chunk_without_done() -> None:
    frames = await _frames([Started("s", "t"), TextDelta("partial"),
                            Failed(UpstreamUnavailableError("upstream died")),
                            TextDelta("never sent")])
    assert frames[-1] == {"error": {"message": "upstream died", "type": "ProviderError",
                                    "code": "upstream_unavailable"}}
    assert "[DONE]" not in frames
    assert len(frames) == 3


async def _writes(events: list[Any]) -> list[list[Any]]:
    """Each write's payloads, in order: what one `send` puts on the wire."""
    async def source() -> AsyncIterator[Event]:
        for event in events[1:]:
            yield event

    return [[orjson.loads(block[len("data: "):]) for block in frame.decode().strip().split("\n\n")]
            async for frame in chunk_frames(events[0], source(), ChunkStream("ab-cd", "openai/m", False))]


async def test_the_role_chunk_rides_with_the_first_content_in_one_write() -> None:
    writes = await _writes([Started("ab-cd", "t"), TextDelta(""), TextDelta("Hel"), TextDelta("lo"),
                            Failed(UpstreamUnavailableError("cut"))])
    assert [[chunk["choices"][0]["delta"] for chunk in write] for write in writes[:2]] == [
        [{"role": "assistant", "content": ""}, {"content": "Hel"}],
        [{"content": "lo"}],
    ]
    assert writes[2] == [{"error": {"message": "cut", "type": "ProviderError", "code": "upstream_unavailable"}}]
    # a failure before any content still comes after the role chunk, in the same write
    failed = await _writes([Started("ab-cd", "t"), Failed(UpstreamUnavailableError("cut"))])
    assert len(failed) == 1
    assert failed[0][0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert failed[0][1]["error"]["code"] == "upstream_unavailable"


async def test_stream_that_ends_without_result_reports_an_error() -> None:
    frames = await _frames([Started("s", "t"), TextDelta("x")])
    assert frames[-1]["error"]["type"] == "InternalServerError"


def test_embedding_request_and_body() -> None:
    call = parse_embedding_request({"model": "openai/text-embedding-3-small", "input": "hi", "dimensions": 2,
                                    "encoding_format": "base64", "user": "u"})
    assert (call.model, call.inputs) == ("openai/text-embedding-3-small", ["hi"])
    assert call.options == {"dimensions": 2, "user": "u"}
    body = embedding_body(call, EmbeddingResponse(vectors=[[0.5, -1.0]], usage=Usage(input_tokens=4)))
    assert body["object"] == "list" and body["model"] == "openai/text-embedding-3-small"
    assert struct.unpack("<2f", base64.b64decode(body["data"][0]["embedding"])) == (0.5, -1.0)
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    plain = parse_embedding_request({"model": "openai/e", "input": ["a", "b"]})
    assert embedding_body(plain, EmbeddingResponse(vectors=[[1.0], [2.0]]))["data"][1] == {
        "object": "embedding", "index": 1, "embedding": [2.0]}


@pytest.mark.parametrize(("body", "fragment"), [
    ({"input": "x"}, "model is required"),
    ({"model": "openai/e"}, "input must be"),
    ({"model": "openai/e", "input": []}, "input must be"),
    ({"model": "openai/e", "input": [[1, 2]]}, "input must be"),
    ({"model": "openai/e", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"model": "openai/e", "input": "x", "dimensions": 0}, "dimensions"),
])
def test_bad_embedding_bodies(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_embedding_request(body)
    assert fragment in caught.value.detail


# ---------------------------------------------------------------- end to end over HTTP: taskgate serve + fakes

CHAT = "/v3/compat/chat/completions"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def chat(server: ServerProcess, body: dict[str, Any], path: str = CHAT, **kw: Any) -> Reply:
    return post(server.url + path, body, **kw)


def chunks_of(reply: Reply) -> list[Any]:
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/event-stream")
    return [event if event == "[DONE]" else orjson.loads(event) for event in sse_events(reply)]


def span(server: ServerProcess, span_id: str) -> dict[str, Any]:
    reply = get(f"{server.url}/v3/spans/{span_id}")
    assert reply.status == 200, reply.body
    return reply.json()["data"]


def test_completion_body_headers_and_cost(server: ServerProcess, fake: FakeProvider) -> None:
    reply = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["id"] == "chatcmpl-" + reply.headers["x-opper-span-id"].replace("-", "")
    assert body["model"] == "openai/gpt-4o-mini"
    assert body["choices"][0]["message"]["content"] == fake.default_text("gpt-4o-mini")
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert body["cost"] > 0
    assert float(reply.headers["x-opper-cost"]) == body["cost"]


def test_stream_is_chosen_by_the_body_never_by_accept(server: ServerProcess, fake: FakeProvider) -> None:
    plain = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER}, headers={"Accept": "text/event-stream"})
    assert plain.headers["content-type"].startswith("application/json")
    streamed = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER, "stream": True},
                    headers={"Accept": "application/json"})
    assert chunks_of(streamed)[-1] == "[DONE]"


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_stream_wire_order_with_usage(server: ServerProcess, fake: FakeProvider, model: str) -> None:
    chunks = chunks_of(chat(server, {"model": model, "messages": USER, "stream": True,
                                     "stream_options": {"include_usage": True}}))
    assert chunks[-1] == "[DONE]"
    role, *middle, finish, usage, _ = chunks
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert role["object"] == "chat.completion.chunk"
    text = "".join(c["choices"][0]["delta"]["content"] for c in middle)
    assert text == fake.default_text(model.split("/", 1)[1])
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0 and usage["cost"] > 0
    assert len({c["id"] for c in chunks[:-1]}) == 1
    without = chunks_of(chat(server, {"model": model, "messages": USER, "stream": True}))
    assert without[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c == "[DONE]" or c["choices"] for c in without)


def test_anthropic_text_and_several_tools_interleaved(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("claude-haiku-4-5", Behaviour(text="Checking both.", tool_calls=[
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Oslo"})]))
    chunks = chunks_of(chat(server, {"model": "anthropic/claude-haiku-4-5", "messages": USER, "stream": True,
                                     "tools": [WEATHER, TIME]}))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == "Checking both."
    fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[:-1]
                 if c["choices"][0]["delta"].get("tool_calls")]
    heads = [f for f in fragments if "id" in f]
    assert [(h["index"], h["type"], h["function"]) for h in heads] == [
        (0, "function", {"name": "get_weather", "arguments": ""}),
        (1, "function", {"name": "get_time", "arguments": ""})]
    assert all(h["id"].startswith("toolu_") for h in heads)
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"}
               for f in fragments if "id" not in f)
    joined = ["".join(f["function"]["arguments"] for f in fragments if f["index"] == i) for i in (0, 1)]
    assert [orjson.loads(j) for j in joined] == [{"city": "Paris"}, {"tz": "Europe/Oslo"}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_upstream_gets_every_parameter_it_understands(server: ServerProcess, fake: FakeProvider) -> None:
    reply = chat(server, {
        "model": "openai/gpt-4o-mini", "messages": USER, "temperature": 0.3, "top_p": 0.9, "max_tokens": 50,
        "stop": ["END"], "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2, "user": "u-1",
        "logit_bias": {"50256": -100}, "parallel_tool_calls": False, "tools": [WEATHER], "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "tags": {"a": 1}, "span_uuid": "x", "evaluate": False, "unknown_field": True,
    })
    assert reply.status == 200, reply.body
    sent = fake.requests[-1].json
    for key, value in {"temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "stop": ["END"], "seed": 7,
                       "presence_penalty": 0.1, "frequency_penalty": 0.2, "user": "u-1",
                       "logit_bias": {"50256": -100}, "parallel_tool_calls": False, "tool_choice": "auto",
                       "response_format": {"type": "json_object"}}.items():
        assert sent[key] == value, key
    assert sent["tools"] == [WEATHER]
    assert sent["messages"] == USER
    assert not {"tags", "span_uuid", "evaluate", "unknown_field"} & set(sent)


def test_anthropic_translation_of_a_tool_round_trip(server: ServerProcess, fake: FakeProvider) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                     {"type": "image_url", "image_url": {"url": PNG_URL}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Rainy"},
    ]
    reply = chat(server, {"model": "anthropic/claude-haiku-4-5", "messages": messages, "tools": [WEATHER],
                          "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                          "max_tokens": 99, "stop": ["END"], "temperature": 0.4})
    assert reply.status == 200, reply.body
    sent = fake.requests[-1].json
    assert sent["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert sent["max_tokens"] == 99 and sent["stop_sequences"] == ["END"] and sent["temperature"] == 0.4
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert sent["tools"][0]["name"] == "get_weather" and sent["tools"][0]["input_schema"]["type"] == "object"
    user, assistant, result = sent["messages"]
    assert user["content"][1]["type"] == "image" and user["content"][1]["source"]["media_type"] == "image/png"
    assert assistant["content"][-1] == {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                        "input": {"city": "Oslo"}}
    assert result["role"] == "user" and result["content"][0]["type"] == "tool_result"
    assert result["content"][0]["tool_use_id"] == "toolu_1"
    body = reply.json()
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert body["choices"][0]["finish_reason"] == "tool_calls" and body["choices"][0]["message"]["content"] is None
    assert call["function"]["name"] == "get_weather" and call["id"].startswith("toolu_")


def test_fallback_before_the_first_chunk(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(status=500), Behaviour(status=503))
    chunks = chunks_of(chat(server, {"model": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"],
                                     "messages": USER, "stream": True}))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[1:-2])
    assert text == fake.default_text("claude-haiku-4-5")
    assert chunks[-2]["model"] == "anthropic/claude-haiku-4-5"
    reply = chat(server, {"model": "openai/gpt-4o-mini", "fallback_models": ["anthropic/claude-haiku-4-5"],
                          "messages": USER})
    assert reply.json()["model"] == "anthropic/claude-haiku-4-5"


def test_upstream_failure_mid_stream_is_an_error_chunk(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="one two three four five six", fail_after=3))
    chunks = chunks_of(chat(server, {"model": "openai/gpt-4o-mini", "messages": USER, "stream": True}))
    assert "[DONE]" not in chunks
    error = chunks[-1]["error"]
    assert set(error) == {"message", "type", "code"} and error["message"]
    assert any(c.get("choices") and c["choices"][0]["delta"].get("content") for c in chunks[:-1])


def test_every_model_failing_before_output_is_a_plain_http_error(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(status=503))
    reply = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER, "stream": True})
    assert reply.status == 502
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["error"]["message"]


@pytest.mark.parametrize(("raw", "fragment"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (orjson.dumps({"model": "openai/gpt-4o-mini"}), "messages"),
    (orjson.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}), "role"),
    (orjson.dumps({"model": "openai/gpt-4o-mini", "messages": USER, "tools": [{"type": "function"}]}), "tools[0]"),
    (orjson.dumps({"model": "nowhere/model-x", "messages": USER}), "unknown provider"),
    (orjson.dumps({"model": "openai/reject-model", "messages": USER}), "reject-model"),
])
def test_bad_input_is_a_400_with_an_openai_style_message(server: ServerProcess, fake: FakeProvider,
                                                         raw: bytes, fragment: str) -> None:
    for stream in (False, True):
        payload = raw
        if stream and raw.startswith(b"{\""):
            payload = orjson.dumps({**orjson.loads(raw), "stream": True})
        reply = post(server.url + CHAT, raw=payload)
        assert reply.status == 400, reply.body
        assert reply.headers["content-type"].startswith("application/json")
        assert fragment in reply.json()["error"]["message"]


def test_missing_key_is_401(server: ServerProcess) -> None:
    reply = post(server.url + CHAT, {"messages": USER}, key=None)
    assert reply.status == 401 and reply.json()["error"]["message"]


def test_span_records_name_tags_parent_and_cost(server: ServerProcess, fake: FakeProvider) -> None:
    parent = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER})
    parent_id = parent.headers["x-opper-span-id"]
    child = chat(server, {"model": "anthropic/claude-haiku-4-5", "messages": USER, "tags": {"team": "search"}},
                 headers={"X-Opper-Name": "support-bot", "X-Opper-Parent-Span-Id": parent_id})
    assert child.status == 200, child.body
    recorded = span(server, child.headers["x-opper-span-id"])
    assert recorded["name"] == "support-bot" and recorded["type"] == "chat"
    assert recorded["parent_id"] == parent_id
    assert recorded["trace_id"] == span(server, parent_id)["trace_id"]
    assert recorded["tags"] == {"team": "search"}
    assert recorded["cost"] == child.json()["cost"]
    assert recorded["model"] == "anthropic/claude-haiku-4-5"
    assert span(server, parent_id)["name"] == "chat"
    by_body = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER, "parent_span_id": parent_id,
                            "stream": True})
    assert span(server, by_body.headers["x-opper-span-id"])["parent_id"] == parent_id
    missing = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER},
                   headers={"X-Opper-Parent-Span-Id": "00000000-0000-0000-0000-000000000000"})
    assert missing.status == 404


def test_structured_output_is_validated_with_a_reask(server: ServerProcess, fake: FakeProvider) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    fake.script("gpt-4o-mini", Behaviour(json={"city": "Oslo"}), Behaviour(json={"city": "Oslo", "population": 7}))
    reply = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER, "response_format": {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}})
    assert reply.status == 200, reply.body
    assert orjson.loads(reply.json()["choices"][0]["message"]["content"]) == {"city": "Oslo", "population": 7}
    assert len(fake.requests) == 2
    assert "population" in str(fake.requests[1].json["messages"][-1]["content"])
    fake.script("gpt-4o-mini", *[Behaviour(json={"city": 1})] * 5)
    failed = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER, "output_schema": schema})
    assert failed.status == 400 and failed.json()["error"]["code"] == "structured_generation_failed"


def test_v2_twin_path(server: ServerProcess, fake: FakeProvider) -> None:
    reply = chat(server, {"model": "openai/gpt-4o-mini", "messages": USER}, path="/v2/openai/chat/completions")
    assert reply.status == 200 and reply.json()["object"] == "chat.completion"


def test_embeddings_over_http(server: ServerProcess, fake: FakeProvider) -> None:
    url = server.url + "/v3/compat/embeddings"
    reply = post(url, {"model": "openai/text-embedding-3-small", "input": ["a", "bb"], "dimensions": 4},
                 headers={"X-Opper-Name": "embedder"})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 4
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert fake.requests[-1].json["dimensions"] == 4
    recorded = span(server, reply.headers["x-opper-span-id"])
    assert recorded["type"] == "embedding" and recorded["name"] == "embedder"
    assert recorded["output"] == {"count": 2, "dimensions": 4}
    encoded = post(url, {"model": "openai/text-embedding-3-small", "input": "a", "dimensions": 4,
                         "encoding_format": "base64"}).json()["data"][0]["embedding"]
    assert list(struct.unpack("<4f", base64.b64decode(encoded))) == pytest.approx(body["data"][0]["embedding"])
    assert post(url, {"model": "openai/text-embedding-3-small"}).status == 400
    assert post(url, {"model": "openai/reject-model", "input": "a"}).status == 400


@pytest.mark.parametrize(("model", "behaviour", "finish", "cached", "reasoning"), [
    ("openai/gpt-4o-mini", Behaviour(text="cut", finish_reason="length",
                                     usage={"prompt_tokens_details": {"cached_tokens": 3},
                                            "completion_tokens_details": {"reasoning_tokens": 5}}), "length", 3, 5),
    ("openai/gpt-4o-mini", Behaviour(text="no", finish_reason="content_filter"), "content_filter", 0, 0),
    ("anthropic/claude-haiku-4-5", Behaviour(text="cut", finish_reason="max_tokens",
                                             usage={"cache_read_input_tokens": 4}), "length", 4, 0),
    ("anthropic/claude-haiku-4-5", Behaviour(text="no", finish_reason="refusal"), "content_filter", 0, 0),
    ("anthropic/claude-haiku-4-5", Behaviour(text="x", finish_reason="stop_sequence"), "stop", 0, 0),
])
@pytest.mark.parametrize("stream", [False, True])
def test_finish_reasons_and_usage_details(server: ServerProcess, fake: FakeProvider, model: str,
                                          behaviour: Behaviour, finish: str, cached: int, reasoning: int,
                                          stream: bool) -> None:
    fake.script(model.split("/", 1)[1], behaviour)
    body: dict[str, Any] = {"model": model, "messages": USER}
    if stream:
        chunks = chunks_of(chat(server, {**body, "stream": True, "stream_options": {"include_usage": True}}))
        reason, usage = chunks[-3]["choices"][0]["finish_reason"], chunks[-2]["usage"]
    else:
        reply = chat(server, body).json()
        reason, usage = reply["choices"][0]["finish_reason"], reply["usage"]
    assert reason == finish
    assert usage["prompt_tokens_details"]["cached_tokens"] == cached
    assert usage["completion_tokens_details"]["reasoning_tokens"] == reasoning


def test_client_leaving_mid_stream_cancels_the_upstream(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="one two three four five six seven eight nine ten",
                                         event_delay_s=0.2))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", CHAT, body=orjson.dumps({"model": "openai/gpt-4o-mini", "messages": USER, "stream": True}),
                 headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    span_id = response.getheader("x-opper-span-id")
    assert response.status == 200 and span_id
    assert b"data: " in response.read1(256)
    conn.close()
    assert fake.wait_disconnects(1, timeout=20)
    for _ in range(100):  # the span is written by the recorder after the cancellation lands
        reply = get(f"{server.url}/v3/spans/{span_id}")
        if reply.status == 200 and reply.json()["data"]["status"] == "cancelled":
            break
        time.sleep(0.1)
    assert reply.json()["data"]["status"] == "cancelled"
