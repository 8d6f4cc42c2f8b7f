"""Shape engine results and events as OpenAI chat completions and chunks (spec §8.3).

The openai client and its `chat.completions.stream()` helper assemble tool calls by `index`,
so indices are renumbered here to be dense and in order of first appearance whatever the
upstream used (Anthropic counts text blocks too), and the first fragment of each index carries
the id, type and name with empty arguments, as OpenAI sends it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from taskgate.api.usage_bodies import chat_usage
from taskgate.engine.task import Event, Failed, Finished, Result, Started, TextDelta, ToolCallDelta
from taskgate.errors import TaskgateError
from taskgate.server.sse import DONE, data_frame, event_frames


def completion_id(span_id: str) -> str:
    return "chatcmpl-" + span_id.replace("-", "")


def answer_content(result: Result, structured: bool) -> str | None:
    """The message text: the validated object's JSON with a schema, null when only tools were called."""
    if structured and not result.tool_calls:
        return orjson.dumps(result.payload).decode()
    if result.tool_calls and not result.text:
        return None
    return result.text or ""


def completion_body(result: Result, structured: bool) -> dict[str, Any]:
    """The non-streamed ChatCompletion, plus Opper's `cost`."""
    content = answer_content(result, structured)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in result.tool_calls
        ]
    return {
        "id": completion_id(result.span_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason,
                     "logprobs": None}],
        "usage": chat_usage(result.usage),
        "cost": result.cost,
    }


def guard_headers(reports: list[dict[str, Any]]) -> dict[str, str]:
    """What the guards found, for a client that only sees headers: `X-Opper-Guard-Flagged: true`
    and `X-Opper-Guard-Findings: input/pii/email=2, ...` (counts; positions are in the span's
    guardrail events). A stream's last chunk carries every report under `guards`."""
    if not reports:
        return {}
    counts: dict[str, int] = {}
    for report in reports:
        for finding in report["findings"]:
            key = f"{report['direction']}/{report['type']}/{finding['kind']}"
            counts[key] = counts.get(key, 0) + 1
    headers = {"x-opper-guard-flagged": "true" if counts else "false"}
    if counts:
        headers["x-opper-guard-findings"] = ", ".join(f"{key}={count}" for key, count in counts.items())
    return headers


def error_object(error: BaseException) -> dict[str, Any]:
    """The `error` member of an OpenAI error chunk; details of unexpected errors stay in the log."""
    if isinstance(error, TaskgateError):
        return {"message": error.detail, "type": error.type_name, "code": error.code}
    return {"message": "internal error; see the server log", "type": "InternalServerError",
            "code": "internal_error"}


class ChunkStream:
    """Turns engine events into encoded `chat.completion.chunk` frames for one completion."""

    def __init__(self, span_id: str, model: str, include_usage: bool, *, guarded: bool = False) -> None:
        self._id = completion_id(span_id)
        self._created = int(time.time())
        self._model = model
        self._include_usage = include_usage
        self._guarded = guarded  # the last chunk carries the guards' reports (an Opper extra, as `cost`)
        self._indices: dict[int, int] = {}  # engine tool index -> dense OpenAI index

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        return data_frame({
            "id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}], **extra,
        })

    def role(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> bytes:
        return self._chunk({"content": text})

    def tool(self, delta: ToolCallDelta) -> list[bytes]:
        index = self._indices.get(delta.index)
        if index is not None:
            return [self._tool_fragment({"index": index, "function": {"arguments": delta.arguments}})]
        index = self._indices[delta.index] = len(self._indices)
        head = {"index": index, "id": delta.id or f"call_{self._id[9:]}_{index}", "type": "function",
                "function": {"name": delta.name or "", "arguments": ""}}
        frames = [self._tool_fragment(head)]
        if delta.arguments:
            frames.append(self._tool_fragment({"index": index, "function": {"arguments": delta.arguments}}))
        return frames

    def _tool_fragment(self, call: dict[str, Any]) -> bytes:
        return self._chunk({"tool_calls": [call]})

    def finish(self, result: Result) -> list[bytes]:
        self._model = result.model or self._model
        extra = {"guards": result.guards} if self._guarded else {}
        frames = [self._chunk({}, result.finish_reason, **extra)]
        if self._include_usage:
            frames.append(data_frame({
                "id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": [], "usage": chat_usage(result.usage), "cost": result.cost,
            }))
        frames.append(DONE)
        return frames

    @staticmethod
    def error(error: BaseException) -> bytes:
        return data_frame({"error": error_object(error)})

    def frames(self, event: Event) -> list[bytes]:
        """The frames for one engine event."""
        if isinstance(event, TextDelta):
            return [self.text(event.text)] if event.text else []
        if isinstance(event, ToolCallDelta):
            return self.tool(event)
        if isinstance(event, Finished):
            return self.finish(event.result)
        if isinstance(event, Failed):
            return [self.error(event.error)]
        return []

    def ended(self) -> list[bytes]:
        return [self.error(TaskgateError("the stream ended without a result"))]


def chunk_frames(first: Event, events: AsyncGenerator[Event, None], chunks: ChunkStream) -> AsyncGenerator[bytes, None]:
    """The chunks of a stream: `Started` becomes the role chunk, which rides with the first content."""
    return event_frames(events, chunks, [chunks.role()] if isinstance(first, Started) else [])
