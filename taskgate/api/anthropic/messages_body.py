"""Shape engine results and events as Anthropic Messages answers and stream events.

The stream is Anthropic's event sequence: `message_start`, then per content block
`content_block_start`, its deltas (`text_delta`, or `input_json_delta` for a tool's input) and
`content_block_stop`, then `message_delta` (stop_reason and usage) and `message_stop`. A failure
after the start is an `error` event, which the anthropic client raises. The engine's events are
OpenAI-shaped (text and tool-call fragments by index), so a block is opened whenever the kind of
fragment, or the tool, changes.
"""

from __future__ import annotations

from typing import Any

import orjson

from taskgate.anthropic_wire import STOP_REASONS, error_type
from taskgate.api.usage_bodies import anthropic_usage
from taskgate.engine.task import Event, Failed, Finished, Result, TextDelta, ToolCallDelta
from taskgate.errors import ProviderError, TaskgateError
from taskgate.providers.base import ToolCall
from taskgate.server.sse import named_frame


def message_id(span_id: str) -> str:
    return "msg_" + span_id.replace("-", "")


def tool_input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the object a tool_use block holds; a model that wrote anything
    else failed at its task, which is the upstream's failure, not the caller's."""
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(f"the model called tool '{call.name}' with arguments that are not a JSON object")
    return value


def message_body(result: Result) -> dict[str, Any]:
    """The non-streamed Message."""
    content: list[dict[str, Any]] = []
    text = result.text if result.payload is None else orjson.dumps(result.payload).decode()  # output_config.format
    if text:
        content.append({"type": "text", "text": text})
    content.extend({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call)}
                   for call in result.tool_calls)
    return {
        "id": message_id(result.span_id),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": content,
        **stop_fields(result),
        "usage": anthropic_usage(result.usage),
    }


def stop_fields(result: Result) -> dict[str, Any]:
    """`stop_reason` and `stop_sequence`, as a Message and its stream's `message_delta` carry them.

    `stop_sequence` is told only when the upstream named the sequence (Anthropic does). An
    OpenAI-compatible upstream's finish_reason "stop" is the same for a stop sequence and for the
    model's own end, and the sequence is left out of its text, so nothing tells which it was: such
    an answer says `end_turn`.
    """
    if result.stop_sequence is not None:
        return {"stop_reason": "stop_sequence", "stop_sequence": result.stop_sequence}
    return {"stop_reason": STOP_REASONS.get(result.finish_reason, "end_turn"), "stop_sequence": None}


def error_body(error: BaseException) -> dict[str, Any]:
    """Anthropic's error envelope; details of unexpected errors stay in the log."""
    if isinstance(error, TaskgateError):
        return {"type": "error", "error": {"type": error_type(error.status), "message": error.detail}}
    return {"type": "error", "error": {"type": "api_error", "message": "internal error; see the server log"}}


class MessageEvents:
    """Turns engine events into encoded Messages stream events for one answer (an `EventFrames`)."""

    def __init__(self, span_id: str, model: str) -> None:
        self._id = message_id(span_id)
        self._model = model
        self._block = -1  # index of the latest content block; -1 before the first
        self._open: int | str | None = None  # "text", or the engine's tool index, of the open block
        self._tool_blocks: dict[int, int] = {}  # engine tool index -> its block's index

    def start(self) -> bytes:
        return named_frame("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0},
        }})

    def frames(self, event: Event) -> list[bytes]:
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.text else []
        if isinstance(event, ToolCallDelta):
            return self._tool(event)
        if isinstance(event, Finished):
            return self._finish(event.result)
        if isinstance(event, Failed):
            return [named_frame("error", error_body(event.error))]
        return []

    def ended(self) -> list[bytes]:
        return [named_frame("error", error_body(TaskgateError("the stream ended without a result")))]

    def _text(self, text: str) -> list[bytes]:
        frames = [] if self._open == "text" else self._open_block("text", {"type": "text", "text": ""})
        frames.append(self._delta({"type": "text_delta", "text": text}))
        return frames

    def _tool(self, delta: ToolCallDelta) -> list[bytes]:
        """A tool call's fragment; its first opens its tool_use block. A fragment of a call whose
        block another has followed (an upstream interleaving its calls) goes to that block still."""
        frames = []
        if delta.index not in self._tool_blocks:
            block = {"type": "tool_use", "id": delta.id or f"toolu_{self._id[4:]}_{delta.index}",
                     "name": delta.name or "", "input": {}}
            frames = self._open_block(delta.index, block)
            self._tool_blocks[delta.index] = self._block
        if delta.arguments:
            frames.append(self._delta({"type": "input_json_delta", "partial_json": delta.arguments},
                                      self._tool_blocks[delta.index]))
        return frames

    def _open_block(self, kind: int | str, block: dict[str, Any]) -> list[bytes]:
        frames = self._close_block()
        self._block += 1
        self._open = kind
        frames.append(named_frame("content_block_start",
                                  {"type": "content_block_start", "index": self._block, "content_block": block}))
        return frames

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [named_frame("content_block_stop", {"type": "content_block_stop", "index": self._block})]

    def _delta(self, delta: dict[str, Any], block: int | None = None) -> bytes:
        index = self._block if block is None else block
        return named_frame("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _finish(self, result: Result) -> list[bytes]:
        frames = self._close_block()
        frames.append(named_frame("message_delta", {
            "type": "message_delta",
            "delta": stop_fields(result),
            "usage": anthropic_usage(result.usage),
        }))
        frames.append(named_frame("message_stop", {"type": "message_stop"}))
        return frames
