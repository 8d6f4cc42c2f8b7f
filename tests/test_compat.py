"""The compat dialect's request parsing and chunk shaping, without a server (fast, exhaustive on shape)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from taskgate.api.compat_embeddings import embedding_body, parse_embedding_request
from taskgate.api.compat_request import parse_chat_request
from taskgate.api.compat_stream import ChunkStream, chunk_frames, completion_body
from taskgate.engine.task import Failed, Finished, Result, Started, TextDelta, ToolCallDelta
from taskgate.errors import BadRequestError, UpstreamUnavailableError
from taskgate.providers.base import EmbeddingResponse, ToolCall, Usage

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
    ({"messages": USER, "model": "gpt-4o"}, "must be written as 'provider/model'"),
    ({"messages": USER, "model": 7}, "model[0]"),
    ({"messages": USER, "fallback_models": "openai/x"}, "fallback_models must be an array"),
    ({"messages": USER, "temperature": "hot"}, "temperature must be a number"),
    ({"messages": USER, "max_tokens": 1.5}, "max_tokens must be an integer"),
    ({"messages": USER, "stop": [1]}, "stop must be"),
    ({"messages": USER, "n": 2}, "n must be 1"),
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
    body = completion_body(_result(), structured=False)
    assert body["id"] == "chatcmpl-0e6c11"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hello", "refusal": None}
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                             "prompt_tokens_details": {"cached_tokens": 3},
                             "completion_tokens_details": {"reasoning_tokens": 1}}
    assert body["cost"] == 0.25
    tools = completion_body(_result(text="", finish_reason="tool_calls",
                                    tool_calls=[ToolCall("call_1", "f", '{"a":1}')]), structured=False)
    message = tools["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_1", "type": "function",
                                      "function": {"name": "f", "arguments": '{"a":1}'}}]
    assert tools["choices"][0]["finish_reason"] == "tool_calls"
    structured = completion_body(_result(text=None, payload={"a": 1}), structured=True)
    assert orjson.loads(structured["choices"][0]["message"]["content"]) == {"a": 1}


async def _frames(events: list[Any], include_usage: bool = False) -> list[Any]:
    async def source():  # type: ignore[no-untyped-def]
        for event in events[1:]:
            yield event

    out = []
    async for frame in chunk_frames(events[0], source(), ChunkStream("ab-cd", "openai/m", include_usage)):
        text = frame.decode()
        assert text.startswith("data: ") and text.endswith("\n\n")
        payload = text[len("data: "):-2]
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
                            Failed(UpstreamUnavailableError("upstream died"), output_started=True),
                            TextDelta("never sent")])
    assert frames[-1] == {"error": {"message": "upstream died", "type": "ProviderError",
                                    "code": "upstream_unavailable"}}
    assert "[DONE]" not in frames
    assert len(frames) == 3


async def test_stream_that_ends_without_result_reports_an_error() -> None:
    frames = await _frames([Started("s", "t"), TextDelta("x")])
    assert frames[-1]["error"]["type"] == "InternalServerError"


def test_embedding_request_and_body() -> None:
    call = parse_embedding_request({"model": "openai/text-embedding-3-small", "input": "hi", "dimensions": 2,
                                    "encoding_format": "base64", "user": "u"})
    assert (call.provider, call.provider_model, call.inputs) == ("openai", "text-embedding-3-small", ["hi"])
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
    ({"input": "x", "model": "e"}, "provider/model"),
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
