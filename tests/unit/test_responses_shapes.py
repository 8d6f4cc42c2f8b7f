"""The Responses dialect without a server: input items to chat messages, and engine events to stream events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from taskgate.api.openai.responses_body import ResponseShape
from taskgate.api.openai.responses_input import input_messages
from taskgate.api.openai.responses_request import parse_responses_request
from taskgate.api.openai.responses_stream import ResponseEvents
from taskgate.engine.task import Event, Failed, Finished, Result, TextDelta, ToolCallDelta
from taskgate.errors import BadRequestError, ProviderError
from taskgate.providers.base import ToolCall, Usage

SPAN = "0b0e6c1e-1111-2222-3333-444455556666"


def decoded(frames: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for frame in b"".join(frames).split(b"\n\n"):
        if frame:
            event_line, data_line = frame.split(b"\n")
            data = orjson.loads(data_line[6:])
            assert event_line == b"event: " + data["type"].encode()
            out.append(data)
    return out


def stream(events: list[Event], structured: bool = False) -> list[dict[str, Any]]:
    mapping = ResponseEvents(ResponseShape(SPAN, {"tools": []}, "openai/m"), structured)
    frames = mapping.head()
    for event in events:
        frames += mapping.frames(event)
    return decoded(frames)


def result(**kw: Any) -> Result:
    return Result(span_id=SPAN, trace_id="t", text=kw.pop("text", "hi"), usage=Usage(3, 2), model="openai/m", **kw)


def test_items_become_one_chat_conversation() -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather? "},
                                     {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "c2", "output": "rain"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "sun"}]},
        {"role": "developer", "content": "Answer in one line."},
    ]
    messages = input_messages(items, "Be brief.")
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather? "},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        {"role": "developer", "content": "Answer in one line."},
    ]


def test_a_new_call_after_outputs_waits_for_every_earlier_output() -> None:
    call = {"type": "function_call", "name": "f", "arguments": "{}"}
    with pytest.raises(BadRequestError, match="no function_call_output before input\\[3\\]"):
        input_messages([{**call, "call_id": "a"}, {**call, "call_id": "b"},
                        {"type": "function_call_output", "call_id": "a", "output": "x"},
                        {**call, "call_id": "c"}], None)
    with pytest.raises(BadRequestError, match="used by an earlier function_call"):
        input_messages([{**call, "call_id": "a"}, {**call, "call_id": "a"}], None)


def test_request_maps_options_and_header_extras() -> None:
    call = parse_responses_request(
        {"input": "hi", "model": "openai/gpt-4o-mini", "fallback_models": ["anthropic/claude-haiku-4-5"],
         "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
         "tool_choice": "required", "max_output_tokens": 9, "reasoning": {"effort": "high"}, "stream": True},
        {"x-opper-name": "agent-x", "x-opper-parent-span-id": "parent-1"}, "p1", "openai/default")
    task = call.task
    assert task.function_name == "agent-x" and task.parent_span_id == "parent-1" and task.span_type == "responses"
    assert [m.name for m in task.models] == ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
    assert task.tools == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                            "strict": True}}]
    assert task.tool_choice == "required"
    assert task.options == {"max_completion_tokens": 9, "reasoning_effort": "high"}
    assert call.stream and call.echo["max_output_tokens"] == 9 and call.echo["tool_choice"] == "required"
    assert task.hold_structured_text and not task.record_function


def test_text_after_a_call_gets_its_own_item_and_items_close_in_order() -> None:
    events = stream([
        ToolCallDelta(0, "call_a", "f", '{"x"'),
        TextDelta("Hel"),
        ToolCallDelta(0, None, None, ": 1}"),
        TextDelta("lo"),
        Finished(result(text="Hello", tool_calls=[ToolCall("call_a", "f", '{"x": 1}')], finish_reason="tool_calls")),
    ])
    kinds = [event["type"] for event in events]
    assert kinds == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.function_call_arguments.delta", "response.output_text.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    output = events[-1]["response"]["output"]
    assert [(item["type"], item["id"]) for item in output] == [
        ("function_call", f"fc_{SPAN.replace('-', '')}_0"), ("message", f"msg_{SPAN.replace('-', '')}_1")]
    assert output[0]["arguments"] == '{"x": 1}' and output[1]["content"][0]["text"] == "Hello"
    assert events[-1]["response"]["usage"] == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5,
                                               "input_tokens_details": {"cached_tokens": 0},
                                               "output_tokens_details": {"reasoning_tokens": 0}}


def test_a_held_structured_answer_goes_out_whole_at_the_end() -> None:
    events = stream([Finished(result(text=None, payload={"a": 1}))], structured=True)
    deltas = [event["delta"] for event in events if event["type"] == "response.output_text.delta"]
    assert deltas == ['{"a":1}']
    assert events[-1]["type"] == "response.completed" and events[-1]["response"]["output_text"] == '{"a":1}'


def test_failure_and_a_stream_that_just_stops_end_with_response_failed() -> None:
    failed = stream([TextDelta("Hi"), Failed(ProviderError("upstream went away"))])
    assert failed[-1]["type"] == "response.failed"
    response = failed[-1]["response"]
    assert response["status"] == "failed" and "upstream went away" in response["error"]["message"]
    assert response["output"][0]["status"] == "incomplete"
    mapping = ResponseEvents(ResponseShape(SPAN, {}, "openai/m"), False)
    assert decoded(mapping.ended())[-1]["response"]["error"]["message"] == "the stream ended without a result"
