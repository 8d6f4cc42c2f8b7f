"""Engine events as the Responses API's stream of typed events.

The sequence is the documented one: `response.created` and `response.in_progress`; for each
output item `response.output_item.added`, then its content (a message's
`response.content_part.added`, `response.output_text.delta`s, `.done`, `response.content_part.done`;
a function call's `response.function_call_arguments.delta`s and `.done`) and
`response.output_item.done`; last `response.completed` (or `.incomplete` when the answer was cut,
or `.failed`). Every event has a `sequence_number` and, as OpenAI sends them, an `event:` line.
The openai client's stream helper needs the content part opened before the first text delta,
and the 2.1.1 Agent runs a tool as soon as its arguments are done, so neither step is skipped.

A structured answer is held back by the engine until it validates (so a misfit is asked again,
as `/call` asks it) and goes out as one delta when the call finishes.

Items stay open until the answer ends: an upstream may interleave text and calls, and each event
names its item by output index, so closing them in order at the end is always well formed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskgate.api.openai.chat_stream import answer_content
from taskgate.api.openai.responses_body import ResponseShape, function_call_item, message_item
from taskgate.engine.task import Event, Failed, Finished, TextDelta, ToolCallDelta
from taskgate.errors import TaskgateError
from taskgate.server.sse import named_frame


@dataclass(slots=True)
class _Item:
    """One output item being streamed: a message (no call_id) or a function call."""

    index: int
    id: str
    call_id: str | None = None
    name: str = ""
    pieces: list[str] = field(default_factory=list)  # text or argument fragments, as sent

    def shape(self, status: str) -> dict[str, Any]:
        content = "".join(self.pieces)
        if self.call_id is None:
            return message_item(self.id, content, status)
        return function_call_item(self.id, self.call_id, self.name, content, status)


class ResponseEvents:
    """Turns one call's engine events into encoded Responses stream events."""

    def __init__(self, shape: ResponseShape, structured: bool) -> None:
        self._shape = shape
        self._structured = structured
        self._sequence = 0
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._calls: dict[int, _Item] = {}  # engine tool index -> its item

    def _event(self, kind: str, **fields: Any) -> bytes:
        frame = named_frame(kind, {"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1
        return frame

    def head(self) -> list[bytes]:
        """What `Started` becomes: the response exists and is in progress."""
        return [self._event(kind, response=self._shape.body("in_progress", []))
                for kind in ("response.created", "response.in_progress")]

    def frames(self, event: Event) -> list[bytes]:
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.text else []
        if isinstance(event, ToolCallDelta):
            return self._tool(event)
        if isinstance(event, Finished):
            return self._finish(event)
        if isinstance(event, Failed):
            return self._failed(event.error)
        return []

    def ended(self) -> list[bytes]:
        return self._failed(TaskgateError("the stream ended without a result"))

    # ---- items

    def _open(self, item: _Item) -> list[bytes]:
        self._items.append(item)
        return [self._event("response.output_item.added", output_index=item.index, item=item.shape("in_progress"))]

    def _text(self, text: str) -> list[bytes]:
        frames: list[bytes] = []
        message = self._message
        if message is None:
            index = len(self._items)
            message = self._message = _Item(index, self._shape.message_id(index))
            frames += self._open(message)
            frames.append(self._event("response.content_part.added", **self._part(message, "")))
        message.pieces.append(text)
        frames.append(self._event("response.output_text.delta", item_id=message.id, output_index=message.index,
                                  content_index=0, delta=text, logprobs=[]))
        return frames

    def _tool(self, delta: ToolCallDelta) -> list[bytes]:
        frames: list[bytes] = []
        call = self._calls.get(delta.index)
        if call is None:
            index = len(self._items)
            item_id = self._shape.call_item_id(index)
            call = self._calls[delta.index] = _Item(index, item_id, delta.id or f"call_{item_id[3:]}",
                                                    delta.name or "")
            frames += self._open(call)
        if delta.arguments:
            call.pieces.append(delta.arguments)
            frames.append(self._event("response.function_call_arguments.delta", item_id=call.id,
                                      output_index=call.index, delta=delta.arguments))
        return frames

    def _part(self, message: _Item, text: str) -> dict[str, Any]:
        return {"item_id": message.id, "output_index": message.index, "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}

    def _close(self, item: _Item) -> list[bytes]:
        content = "".join(item.pieces)
        if item.call_id is None:
            frames = [
                self._event("response.output_text.done", item_id=item.id, output_index=item.index, content_index=0,
                            text=content, logprobs=[]),
                self._event("response.content_part.done", **self._part(item, content)),
            ]
        else:
            frames = [self._event("response.function_call_arguments.done", item_id=item.id,
                                  output_index=item.index, name=item.name, arguments=content)]
        frames.append(self._event("response.output_item.done", output_index=item.index,
                                  item=item.shape("completed")))
        return frames

    # ---- the end

    def _finish(self, event: Finished) -> list[bytes]:
        frames: list[bytes] = []
        if self._message is None and self._structured:  # held back until it validated: sent whole now
            text = answer_content(event.result, structured=True)
            if text:
                frames += self._text(text)
        frames += [frame for item in self._items for frame in self._close(item)]
        body = self._shape.finished(event.result, [item.shape("completed") for item in self._items])
        frames.append(self._event(f"response.{body['status']}", response=body))
        return frames

    def _failed(self, error: BaseException) -> list[bytes]:
        body = self._shape.body("failed", [item.shape("incomplete") for item in self._items], error=error)
        return [self._event("response.failed", response=body)]
