"""The Responses API `input` (a string or typed items) as the chat conversation the engine sends.

Every upstream speaks a chat shape, so items become chat messages here: consecutive
`function_call` items become one assistant message with `tool_calls`, and each
`function_call_output` a `tool` message. A conversation no upstream would accept is a 400 naming
the item: an output whose call never came, a call left without its output before the next
message, an item type that needs state this gateway does not keep (stored responses, reasoning).
"""

from __future__ import annotations

from typing import Any

from taskgate.api.openai.chat_request import TOOL_NAME
from taskgate.errors import BadRequestError

MESSAGE_ROLES = frozenset({"user", "system", "developer", "assistant"})
TEXT_PARTS = frozenset({"input_text", "output_text"})
STATELESS_ONLY = {
    "item_reference": "item references point at stored responses, which this gateway does not keep",
    "reasoning": "reasoning items cannot be replayed: this gateway returns none to replay",
}


def input_messages(value: Any, instructions: str | None) -> list[dict[str, Any]]:
    """The chat messages for `input`, after a system message holding `instructions`."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] if instructions else []
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
        return messages
    if not isinstance(value, list) or not value:
        raise BadRequestError("input must be a string or a non-empty array of items")
    return _Conversation(messages).read(value)


class _Conversation:
    """Builds the messages item by item, tracking which function calls still await their output."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.calls: set[str] = set()  # every call_id seen
        self.pending: dict[str, str] = {}  # call_id -> where, for calls without their output yet

    def read(self, items: list[Any]) -> list[dict[str, Any]]:
        for index, item in enumerate(items):
            where = f"input[{index}]"
            if not isinstance(item, dict):
                raise BadRequestError(f"{where} must be an object")
            kind = item.get("type", "message" if "role" in item else None)
            if kind == "message":
                self._start(where)
                self.messages.append(_message(item, where))
            elif kind == "function_call":
                self._function_call(item, where)
            elif kind == "function_call_output":
                self._function_call_output(item, where)
            elif kind in STATELESS_ONLY:
                raise BadRequestError(f"{where}.type {kind!r} is not supported: {STATELESS_ONLY[kind]}")
            else:
                raise BadRequestError(
                    f"{where}.type must be message, function_call or function_call_output, got {kind!r}")
        self._start("the end of input")
        return self.messages

    def _start(self, where: str) -> None:
        """A new turn may begin only once every earlier call has its output, as upstreams require."""
        if self.pending:
            call_id, at = next(iter(self.pending.items()))
            raise BadRequestError(f"{at} (call_id {call_id!r}) has no function_call_output before {where}")

    def _function_call(self, item: dict[str, Any], where: str) -> None:
        call_id = _text(item, "call_id", where)
        name = item.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise BadRequestError(f"{where}.name must match ^[a-zA-Z0-9_-]{{1,64}}$, got {name!r}")
        arguments = item.get("arguments")
        if not isinstance(arguments, str):
            raise BadRequestError(f"{where}.arguments must be a JSON string")
        if call_id in self.calls:
            raise BadRequestError(f"{where}.call_id {call_id!r} is used by an earlier function_call")
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != "assistant":
            self._start(where)
            last = {"role": "assistant", "content": None}
            self.messages.append(last)
        last.setdefault("tool_calls", []).append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        self.calls.add(call_id)
        self.pending[call_id] = where

    def _function_call_output(self, item: dict[str, Any], where: str) -> None:
        call_id = _text(item, "call_id", where)
        if call_id not in self.pending:
            problem = "was answered already" if call_id in self.calls else "has no function_call before it"
            raise BadRequestError(f"{where}.call_id {call_id!r} {problem}")
        del self.pending[call_id]
        output = item.get("output")
        if isinstance(output, list):
            output = _joined_text(output, f"{where}.output")
        elif not isinstance(output, str):
            raise BadRequestError(f"{where}.output must be a string or an array of input_text parts")
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise BadRequestError(f"{where}.role must be one of {', '.join(sorted(MESSAGE_ROLES))}, got {role!r}")
    content = item.get("content")
    if isinstance(content, list):
        if role == "assistant":  # an assistant turn is text (or a refusal) in every upstream
            content = _joined_text(content, f"{where}.content")
        else:
            content = [_part(part, f"{where}.content[{position}]") for position, part in enumerate(content)]
    elif not isinstance(content, str):
        raise BadRequestError(f"{where}.content must be a string or an array of content parts")
    return {"role": role, "content": content}


def _part(part: Any, where: str) -> dict[str, Any]:
    """A user or system content part as its chat equivalent."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS:
        return {"type": "text", "text": _text(part, "text", where, empty=True)}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise BadRequestError(f"{where} has type 'input_image' and needs an image_url (file_id is not supported)")
        image: dict[str, Any] = {"url": url}
        detail = part.get("detail")
        if detail is not None:
            if detail not in ("auto", "low", "high"):
                raise BadRequestError(f"{where}.detail must be auto, low or high")
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data, filename = part.get("file_data"), part.get("filename")
        if not isinstance(data, str) or not data:
            raise BadRequestError(f"{where} has type 'input_file' and needs file_data, a base64 data URL "
                                  "(file_id and file_url are not supported)")
        file = {"file_data": data, **({"filename": filename} if isinstance(filename, str) else {})}
        return {"type": "file", "file": file}
    raise BadRequestError(f"{where}.type must be input_text, output_text, input_image or input_file, got {kind!r}")


def _joined_text(parts: list[Any], where: str) -> str:
    """Text-only content (an assistant turn, a tool's output) as one string."""
    texts = []
    for position, part in enumerate(parts):
        here = f"{where}[{position}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            texts.append(_text(part, "text", here, empty=True))
        elif kind == "refusal":
            texts.append(_text(part, "refusal", here, empty=True))
        else:
            raise BadRequestError(f"{here}.type must be input_text, output_text or refusal, got {kind!r}")
    return "".join(texts)


def _text(item: dict[str, Any], key: str, where: str, empty: bool = False) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not (empty or value):
        raise BadRequestError(f"{where}.{key} must be a {'' if empty else 'non-empty '}string")
    return value
