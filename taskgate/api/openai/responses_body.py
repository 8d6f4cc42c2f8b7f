"""The Response object and its output items, shared by the plain answer and the stream's events.

One shape serves both the OpenAI Responses API and OpenResponses: it carries every field the
openai client's `Response` model and the 2.1.1 Agent's ORResponse read (plus Opper's `cost`).
Item ids derive from the span and the item's output index, so a streamed response and the
`response.completed` it ends with name each item alike.
"""

from __future__ import annotations

import time
from typing import Any

from taskgate.api.openai.chat_stream import answer_content, error_object
from taskgate.api.usage_bodies import v2_usage
from taskgate.engine.task import Result
from taskgate.providers.base import ToolCall

# A finish the model did not choose: the response is incomplete, for the reason OpenAI names.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


class ResponseShape:
    """The Response object of one call: its id and the request's settings, at each status."""

    def __init__(self, span_id: str, echo: dict[str, Any], model: str) -> None:
        self.key = span_id.replace("-", "")
        self.id = "resp_" + self.key
        self.created_at = int(time.time())
        self.echo = echo
        self.model = model

    def message_id(self, index: int) -> str:
        return f"msg_{self.key}_{index}"

    def call_item_id(self, index: int) -> str:
        return f"fc_{self.key}_{index}"

    def body(self, status: str, output: list[dict[str, Any]], result: Result | None = None,
             error: BaseException | None = None) -> dict[str, Any]:
        """The object at `status`; a finished one carries the result's usage, cost and model."""
        reason = INCOMPLETE.get(result.finish_reason) if result is not None else None
        if result is not None:
            self.model = result.model or self.model
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if status == "completed" else None,
            "status": status,
            "error": error_object(error) if error is not None else None,
            "incomplete_details": {"reason": reason} if reason else None,
            "model": self.model,
            "output": output,
            "output_text": "".join(part["text"] for item in output if item["type"] == "message"
                                   for part in item["content"]),
            "usage": v2_usage(result.usage) if result is not None else None,
            "cost": result.cost if result is not None else None,
            **self.echo,
        }

    def finished(self, result: Result, output: list[dict[str, Any]]) -> dict[str, Any]:
        """The last object of a call that answered: completed, or incomplete when it was cut."""
        return self.body("incomplete" if result.finish_reason in INCOMPLETE else "completed", output, result)

    def answer(self, result: Result, structured: bool) -> dict[str, Any]:
        """The whole object of a non-streamed call: the message (if any text), then the calls."""
        output: list[dict[str, Any]] = []
        text = answer_content(result, structured)
        if text is not None:
            output.append(message_item(self.message_id(0), text, "completed"))
        first = len(output)
        output.extend(self._call(first + offset, call) for offset, call in enumerate(result.tool_calls))
        return self.finished(result, output)

    def _call(self, index: int, call: ToolCall) -> dict[str, Any]:
        return function_call_item(self.call_item_id(index), call.id, call.name, call.arguments, "completed")
