"""Engine events shaped as Anthropic Messages stream events: block numbering, interleaved tool
fragments, finish and failure, without a server."""

from __future__ import annotations

from typing import Any

import orjson

from taskgate.api.anthropic.messages_body import MessageEvents, message_body
from taskgate.engine.task import Failed, Finished, Result, TextDelta, ToolCallDelta
from taskgate.errors import UpstreamUnavailableError
from taskgate.providers.base import ToolCall, Usage


def decoded(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in frames:
        name, data = frame.decode().rstrip("\n").split("\n")
        out.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def result(**fields: Any) -> Result:
    return Result(span_id="0e6c11", trace_id="t", text="hi", usage=Usage(5, 2, 0, 3, 1), model="openai/m", **fields)


def test_blocks_open_and_close_in_order_and_late_fragments_find_their_block() -> None:
    events = MessageEvents("0e6c11", "openai/m")
    frames = [events.start()]
    for event in (TextDelta("Let me "), TextDelta("check."), ToolCallDelta(0, "call_a", "f", '{"x":'),
                  ToolCallDelta(1, "call_b", "g", "{}"), ToolCallDelta(0, None, None, "1}"),
                  Finished(result(finish_reason="tool_calls"))):
        frames += events.frames(event)
    got = decoded(frames)
    assert all(name == data["type"] for name, data in got)
    assert [(name, data.get("index")) for name, data in got] == [
        ("message_start", None), ("content_block_start", 0), ("content_block_delta", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1),
        ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 2),
        ("content_block_delta", 1),  # call_a's last fragment, after call_b began
        ("content_block_stop", 2), ("message_delta", None), ("message_stop", None)]
    assert got[5][1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}
    assert got[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert got[-2][1]["usage"] == {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 1,
                                   "cache_read_input_tokens": 3}


def test_a_failure_is_an_error_event_and_an_early_end_is_one_too() -> None:
    events = MessageEvents("0e6c11", "openai/m")
    [(name, data)] = decoded(events.frames(Failed(UpstreamUnavailableError("upstream went away"))))
    assert name == "error" and data == {"type": "error",
                                        "error": {"type": "api_error", "message": "upstream went away"}}
    [(name, data)] = decoded(events.ended())
    assert name == "error" and data["error"]["type"] == "api_error"


def test_the_message_body() -> None:
    body = message_body(result(tool_calls=[ToolCall("call_1", "f", '{"a": 1}')], finish_reason="tool_calls"))
    assert body["id"] == "msg_0e6c11" and body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "hi"},
                               {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}]
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None
    structured = message_body(result(payload={"city": "Oslo"}, finish_reason="length"))
    assert structured["content"] == [{"type": "text", "text": '{"city":"Oslo"}'}]
    assert structured["stop_reason"] == "max_tokens"
