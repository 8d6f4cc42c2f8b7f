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
from taskgate.engine.task import ChoiceEvent, Event, Failed, Finished, Result, Started, TextDelta, ToolCallDelta
from taskgate.errors import TaskgateError
from taskgate.providers.base import Usage
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


def logprobs_object(logprobs: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A choice's `logprobs`: null unless the caller asked and the upstream answered with them."""
    return None if logprobs is None else {"content": logprobs, "refusal": None}


def completion_body(results: list[Result], structured: bool) -> dict[str, Any]:
    """The non-streamed ChatCompletion with one choice per result (`n`), plus Opper's `cost`:
    usage and cost are the sum over the choices, each of which was its own upstream call."""
    first = results[0]
    usage, cost = totals(results)
    return {
        "id": completion_id(first.span_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": first.model,
        "choices": [_choice(index, result, structured) for index, result in enumerate(results)],
        "usage": chat_usage(usage),
        "cost": cost,
    }


def totals(results: list[Result]) -> tuple[Usage, float | None]:
    """What several choices used and cost together; no cost when one of them has no known price.
    Read only: one choice's (the common case) are its own, with nothing summed or copied."""
    if len(results) == 1:
        return results[0].usage, results[0].cost
    usage = Usage()
    for result in results:
        usage.add(result.usage)
    costs = [result.cost for result in results]
    return usage, None if None in costs else sum(costs)  # type: ignore[arg-type]


def _choice(index: int, result: Result, structured: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer_content(result, structured), "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in result.tool_calls
        ]
    return {"index": index, "message": message, "finish_reason": result.finish_reason,
            "logprobs": logprobs_object(result.logprobs)}


def error_object(error: BaseException) -> dict[str, Any]:
    """The `error` member of an OpenAI error chunk; details of unexpected errors stay in the log."""
    if isinstance(error, TaskgateError):
        return {"message": error.detail, "type": error.type_name, "code": error.code}
    return {"message": "internal error; see the server log", "type": "InternalServerError",
            "code": "internal_error"}


class ChunkStream:
    """Turns engine events into encoded `chat.completion.chunk` frames for one completion, or for
    one choice (`choice`) of a completion of several."""

    def __init__(self, span_id: str, model: str, include_usage: bool, choice: int = 0, *,
                 guarded: bool = False) -> None:
        self._id = completion_id(span_id)
        self._created = int(time.time())
        self._model = model
        self._include_usage = include_usage
        self._choice = choice
        self._guarded = guarded  # the finish chunk carries the guards' reports (an Opper extra, as `cost`)
        self._indices: dict[int, int] = {}  # engine tool index -> dense OpenAI index

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None,
               logprobs: dict[str, Any] | None = None, **extra: Any) -> bytes:
        return data_frame({
            "id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
            "choices": [{"index": self._choice, "delta": delta, "finish_reason": finish_reason,
                         "logprobs": logprobs}], **extra,
        })

    def role(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, delta: TextDelta) -> bytes:
        return self._chunk({"content": delta.text}, logprobs=logprobs_object(delta.logprobs))

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
        return [self.finish_chunk(result), *self.closing(result.usage, result.cost)]

    def finish_chunk(self, result: Result) -> bytes:
        self._model = result.model or self._model
        extra: dict[str, Any] = {"guards": result.guards} if self._guarded else {}
        return self._chunk({}, result.finish_reason, **extra)

    def closing(self, usage: Usage, cost: float | None) -> list[bytes]:
        """The usage chunk when asked for, and `[DONE]`."""
        frames = []
        if self._include_usage:
            frames.append(data_frame({
                "id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": [], "usage": chat_usage(usage), "cost": cost,
            }))
        frames.append(DONE)
        return frames

    @staticmethod
    def error(error: BaseException) -> bytes:
        return data_frame({"error": error_object(error)})

    def frames(self, event: Event) -> list[bytes]:
        """The frames for one engine event."""
        if isinstance(event, TextDelta):
            return [self.text(event)] if event.text else []
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


class ChoiceChunks:
    """The chunks of a completion of several choices (`n`), from their tagged engine events: each
    choice's chunks carry its index, and the usage chunk (all choices together) and `[DONE]`
    follow the last choice's finish. A failure of any choice ends the completion with its error."""

    def __init__(self, starts: list[Started], model: str, include_usage: bool, *, guarded: bool = False) -> None:
        self._choices = [ChunkStream(starts[0].span_id, model, include_usage, index, guarded=guarded)
                         for index in range(len(starts))]
        self._results: dict[int, Result] = {}
        self._failed = False

    def head(self) -> list[bytes]:
        """Each choice's role chunk."""
        return [choice.role() for choice in self._choices]

    def frames(self, event: ChoiceEvent | Failed) -> list[bytes]:
        if isinstance(event, Failed):  # raised while relaying, not any one choice's
            self._failed = True
            return [ChunkStream.error(event.error)]
        inner, choice = event.event, self._choices[event.index]
        if isinstance(inner, Finished):
            self._results[event.index] = inner.result
            return [choice.finish_chunk(inner.result)]
        self._failed = self._failed or isinstance(inner, Failed)
        return choice.frames(inner)

    def ended(self) -> list[bytes]:
        if self._failed:
            return []
        if len(self._results) < len(self._choices):
            return self._choices[0].ended()
        usage, cost = totals([self._results[index] for index in sorted(self._results)])
        return self._choices[0].closing(usage, cost)
