"""The Anthropic Messages wire format, as the fake upstream speaks it (whole bodies and SSE events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tests.fakes.common import Behaviour, content_chars, dumps, input_tokens, merge_usage, pieces, token_count
from tests.fakes.schema_instance import instance_for

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_MESSAGES = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error",
    529: "Overloaded",
}
STREAM_ERROR = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def error_body(status: int, message: str | None = None) -> bytes:
    """Anthropic's error envelope for `status`."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return orjson.dumps({
        "type": "error",
        "error": {"type": kind, "message": message or _MESSAGES.get(status, "Internal server error")},
    })


def unknown_model_body(model: str) -> bytes:
    return error_body(404, f"model: {model}")


def header_problem(headers: Any) -> tuple[int, bytes] | None:
    """Anthropic refuses a request without its key or version header before reading the body.

    Newer official clients send the key as `Authorization: Bearer` instead of `x-api-key`.
    """
    if not headers.get("x-api-key") and not headers.get("authorization", "").startswith("Bearer "):
        return 401, error_body(401, "x-api-key header is required")
    if not headers.get("anthropic-version"):
        return 400, error_body(400, "anthropic-version: header is required")
    return None


def request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: Field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    return None


@dataclass(slots=True)
class MessageReply:
    id: str
    model: str
    text: str | None
    tool_uses: list[tuple[str, str, Any]]  # (id, name, input object)
    stop_reason: str
    usage: dict[str, Any]
    stop_sequence: str | None = None  # the request's stop sequence the text ended on

    def body(self) -> bytes:
        content: list[dict[str, Any]] = []
        if self.text is not None:
            content.append({"type": "text", "text": self.text})
        for tid, name, args in self.tool_uses:
            content.append({"type": "tool_use", "id": tid, "name": name, "input": args})
        return orjson.dumps({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": self.usage,
        })

    def events(self) -> list[bytes]:
        """message_start, a ping, one start/deltas/stop run per block, message_delta, message_stop."""
        start_usage = {k: v for k, v in self.usage.items() if k != "output_tokens"}
        start_usage["output_tokens"] = 1
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage,
        }
        events = [_event("message_start", {"type": "message_start", "message": message})]
        index = 0
        if self.text is not None:
            events.append(_event("content_block_start", {
                "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""},
            }))
            events.append(PING)
            head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            for piece in pieces(self.text):
                events.append(head + b'"delta":{"type":"text_delta","text":' + orjson.dumps(piece) + b"}}\n\n")
            events.append(_block_stop(0))
            index = 1
        else:
            events.append(PING)
        for tid, name, args in self.tool_uses:
            events.append(_event("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": tid, "name": name, "input": {}},
            }))
            head = f'event: content_block_delta\ndata: {{"type":"content_block_delta","index":{index},'.encode()
            for piece in ("", *pieces(dumps(args))):
                events.append(head + b'"delta":{"type":"input_json_delta","partial_json":'
                              + orjson.dumps(piece) + b"}}\n\n")
            events.append(_block_stop(index))
            index += 1
        events.append(_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
            "usage": {"output_tokens": self.usage["output_tokens"]},
        }))
        events.append(MESSAGE_STOP)
        return events


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _block_stop(index: int) -> bytes:
    return f'event: content_block_stop\ndata: {{"type":"content_block_stop","index":{index}}}\n\n'.encode()


def message_reply(body: dict[str, Any], behaviour: Behaviour | None, default_text: str, seq: int) -> MessageReply:
    """Decide the answer: the scripted behaviour if any, else what the request asks for."""
    forced = _forced_tool(body)
    text: str | None = None
    calls: list[tuple[str, Any]] = []
    if behaviour is not None and (
        behaviour.text is not None or behaviour.json is not None or behaviour.tool_calls
    ):
        text = behaviour.text
        if behaviour.json is not None:
            tool = forced or _first_tool(body)
            if tool is None:
                text = dumps(behaviour.json) if text is None else text
            else:
                calls.append((tool["name"], behaviour.json))
        calls.extend(behaviour.tool_calls or [])
    elif forced is not None:
        calls.append((forced["name"], instance_for(forced.get("input_schema") or {"type": "object"})))
    else:
        text = default_text
    text, sequence = _cut_at_stop(text, body.get("stop_sequences"))
    if sequence is not None:
        calls = []  # the answer ended in its text, before any call
    tool_uses = [(f"toolu_fake{seq}_{i}", name, args) for i, (name, args) in enumerate(calls)]
    stop = (behaviour.finish_reason if behaviour else None) or (
        "stop_sequence" if sequence is not None else "tool_use" if tool_uses else "end_turn")
    chars = content_chars(body.get("system")) + sum(
        content_chars(m.get("content")) for m in body["messages"] if isinstance(m, dict)
    )
    output = token_count(text or "") + sum(token_count(dumps(args)) for _, _, args in tool_uses)
    usage = merge_usage({
        "input_tokens": input_tokens(chars),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output,
        "service_tier": "standard",
    }, behaviour.usage if behaviour else None)
    return MessageReply(f"msg_fake{seq}", body["model"], text, tool_uses, stop, usage, sequence)


def _cut_at_stop(text: str | None, stops: Any) -> tuple[str | None, str | None]:
    """The text up to the first of the request's stop sequences it holds, and that sequence; as
    Anthropic does, the sequence itself is left out of the text."""
    if text is None or not isinstance(stops, list):
        return text, None
    found = [(text.find(stop), stop) for stop in stops if isinstance(stop, str) and stop and stop in text]
    if not found:
        return text, None
    position, stop = min(found, key=lambda hit: hit[0])
    return text[:position], stop


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type") not in ("tool", "any"):
        return None
    if choice["type"] == "any":
        return _first_tool(body)
    return next((t for t in _tools(body) if t.get("name") == choice.get("name")), None)


def _first_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = _tools(body)
    return tools[0] if tools else None


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in body.get("tools") or [] if isinstance(t, dict)]
