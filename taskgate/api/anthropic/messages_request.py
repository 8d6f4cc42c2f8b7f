"""Parse an Anthropic Messages body into a chat-mode Task.

The engine speaks the OpenAI chat shapes (providers/base.py), so the conversation is rewritten
into them here: tool_use blocks become an assistant's `tool_calls`, tool_result blocks become
`tool` messages placed first (OpenAI wants them right after the call), the rest of a user turn
follows as content parts. Any provider then answers, and an Anthropic upstream gets its own shape
back from the adapter. Everything the client may send is checked here, so that a malformed block
is a 400 naming it rather than an upstream error; anything Anthropic defines that cannot be
carried (server tools, containers, MCP servers, a top-level cache_control) is a 400 too, never
dropped. `output_config.format` is an output schema, validated and re-asked like a `/call`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from taskgate.api.openai.chat_request import compat_task
from taskgate.api.request_fields import object_items, tool_name
from taskgate.engine.task import ModelChoice, Task
from taskgate.errors import BadRequestError
from taskgate.providers.catalog import split_model_name

DEFAULT_FUNCTION_NAME = "messages"
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
MAX_TOKENS = 2**31 - 1
MEDIA_SOURCES = ("base64", "url")

# Top-level fields of a Messages request this endpoint carries out; any other is refused by name.
KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature", "top_p", "top_k",
    "tools", "tool_choice", "metadata", "thinking", "output_config",
})
EFFORTS = ("low", "medium", "high")  # output_config.effort values every upstream has (OpenAI's reasoning_effort)


@dataclass(slots=True)
class MessagesCall:
    """The Task, and what the handler needs besides it to shape the answer."""

    task: Task
    stream: bool
    model_label: str  # shown in `message_start`, before the answering model is known


def parse_messages_request(body: Mapping[str, Any], headers: Mapping[str, str], project_id: str) -> MessagesCall:
    """Validate `body` and build the Task; raises BadRequestError naming the offending field."""
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise BadRequestError(f"{', '.join(unknown)}: not supported by this server's Messages API")
    model = _model(body.get("model"))
    tools = _tools(body.get("tools"))
    options = _options(body)
    tool_choice = _tool_choice(body.get("tool_choice"), tools, options)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequestError("stream must be a boolean")
    messages = [*_system(body.get("system")), *_conversation(body.get("messages"))]
    task = compat_task(
        body, headers, project_id, DEFAULT_FUNCTION_NAME, "chat",
        output_schema=_output_config(body.get("output_config"), options),
        models=[ModelChoice(model)],
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        options=options,
    )
    return MessagesCall(task=task, stream=stream, model_label=model)


def _model(value: Any) -> str:
    """`provider/model`; a bare `claude-...` name, as Anthropic's own clients send it, is Anthropic's."""
    if not isinstance(value, str) or not value:
        raise BadRequestError("model must be a non-empty string 'provider/model'")
    if "/" not in value and value.startswith("claude-"):
        value = "anthropic/" + value
    split_model_name(value)
    return value


# ---- options


def _options(body: Mapping[str, Any]) -> dict[str, Any]:
    max_tokens: Any = body.get("max_tokens")
    if not (_is_integer(max_tokens) and 1 <= max_tokens <= MAX_TOKENS):
        raise BadRequestError(f"max_tokens is required: an integer from 1 to {MAX_TOKENS}")
    options: dict[str, Any] = {"max_tokens": max_tokens}
    for key in ("temperature", "top_p"):
        if (value := body.get(key)) is not None:
            if not _is_number(value):
                raise BadRequestError(f"{key} must be a number")
            options[key] = value
    if (top_k := body.get("top_k")) is not None:
        if not _is_integer(top_k) or top_k < 0:
            raise BadRequestError("top_k must be a non-negative integer")
        options["top_k"] = top_k
    if (stops := body.get("stop_sequences")) is not None:
        if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
            raise BadRequestError("stop_sequences must be an array of non-empty strings")
        if stops:
            options["stop"] = stops
    if (metadata := body.get("metadata")) is not None:
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        if not isinstance(metadata, dict) or set(metadata) - {"user_id"} or not isinstance(user, str | None):
            raise BadRequestError("metadata must be an object with only a string user_id")
        if user:
            options["user"] = user
    if (thinking := body.get("thinking")) is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise BadRequestError("thinking must be an object with type enabled, disabled or adaptive")
        options["thinking"] = thinking
    return options


def _output_config(value: Any, options: dict[str, Any]) -> dict[str, Any] | None:
    """Structured output (`format`), validated and re-asked like a `/call` with an output schema,
    whichever provider answers; `effort` as OpenAI's reasoning_effort where both APIs have it."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"format", "effort"}:
        raise BadRequestError("output_config must be an object with only format and effort")
    effort = value.get("effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise BadRequestError(f"output_config.effort must be one of {', '.join(EFFORTS)}, got {effort!r}")
        options["reasoning_effort"] = effort
    spec = value.get("format")
    if spec is None:
        return None
    schema = spec.get("schema") if isinstance(spec, dict) and spec.get("type") == "json_schema" else None
    if not isinstance(schema, dict):
        raise BadRequestError("output_config.format must be {type: 'json_schema', schema: <JSON Schema object>}")
    return schema


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- tools


def _tools(value: Any) -> list[dict[str, Any]] | None:
    """Client tools as OpenAI function tools; Anthropic's server tools (web search, code execution,
    ...) run at Anthropic and no other provider has them, so they are refused."""
    if value is None:
        return None
    tools: list[dict[str, Any]] = []
    names: set[str] = set()
    for where, tool in object_items(value, "tools"):
        if tool.get("type", "custom") != "custom":
            raise BadRequestError(f"{where}.type {tool['type']!r}: server tools are not supported, only client tools")
        name = tool_name(tool.get("name"), TOOL_NAME, names, f"{where}.name")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise BadRequestError(f"{where}.input_schema must be a JSON Schema object of type 'object'")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        description = tool.get("description")
        if description is not None:
            if not isinstance(description, str):
                raise BadRequestError(f"{where}.description must be a string")
            function["description"] = description
        tools.append({"type": "function", "function": function})
    return tools or None


def _tool_choice(value: Any, tools: list[dict[str, Any]] | None, options: dict[str, Any]) -> Any:
    """Anthropic's tool_choice as OpenAI's; `disable_parallel_tool_use` is OpenAI's
    `parallel_tool_calls: false`, which the Anthropic adapter turns back."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise BadRequestError("tool_choice must be an object with type auto, any, tool or none")
    disable = value.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise BadRequestError("tool_choice.disable_parallel_tool_use must be a boolean")
    if disable and kind != "none":
        options["parallel_tool_calls"] = False
    if kind in ("any", "tool") and not tools:
        raise BadRequestError(f"tool_choice '{kind}' needs tools")
    if kind == "auto":
        return "auto"
    if kind == "none":
        return "none"
    if kind == "any":
        return "required"
    name = value.get("name")
    if not isinstance(name, str) or not any(tool["function"]["name"] == name for tool in tools or ()):
        raise BadRequestError(f"tool_choice names tool {name!r}, which is not in tools")
    return {"type": "function", "function": {"name": name}}


# ---- system and conversation


def _system(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}]
    if not isinstance(value, list):
        raise BadRequestError("system must be a string or an array of text blocks")
    texts = []
    for index, block in enumerate(value):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise BadRequestError(f"system[{index}] must be a text block with a string 'text'")
        texts.append(block["text"])
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def _conversation(value: Any) -> list[dict[str, Any]]:
    """The Messages `messages` as OpenAI chat messages. Every tool_result must answer a tool_use of
    the assistant turn just before it, and every tool_use of an earlier turn must be answered in
    the next: both APIs refuse anything else, and saying so here names the block."""
    if not isinstance(value, list) or not value:
        raise BadRequestError("messages must be a non-empty array of message objects")
    out: list[dict[str, Any]] = []
    pending: dict[str, str] = {}  # tool_use ids of the last assistant turn, not yet answered -> where
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequestError(f"{where} must be an object")
        role = message.get("role")
        blocks = _blocks(message.get("content"), where)
        if role == "assistant":
            _unanswered(pending)
            converted, pending = _assistant(blocks, where)
            out.append(converted)
        elif role == "user":
            out.extend(_user(blocks, where, pending))
            _unanswered(pending)
        else:
            raise BadRequestError(f"{where}.role must be user or assistant, got {role!r}")
    return out


def _unanswered(pending: dict[str, str]) -> None:
    if pending:
        call_id, where = next(iter(pending.items()))
        raise BadRequestError(f"{where}: tool_use '{call_id}' has no tool_result in the next user message")


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequestError(f"{where}.content must be a string or an array of content blocks")
    if not content:
        raise BadRequestError(f"{where}.content must not be empty")
    for position, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadRequestError(f"{where}.content[{position}] must be an object with a string 'type'")
    return content


def _assistant(blocks: list[dict[str, Any]], where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """An assistant turn: its text, and its tool_use blocks as `tool_calls`. The model's earlier
    thinking is its own working, which no other provider can take back: it is left out."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    pending: dict[str, str] = {}
    for position, block in enumerate(blocks):
        here = f"{where}.content[{position}]"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, here))
        elif kind == "tool_use":
            call_id, name, arguments = _tool_use(block, here)
            if call_id in pending:
                raise BadRequestError(f"{here}: tool_use id '{call_id}' is used twice")
            pending[call_id] = here
            calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        elif kind not in ("thinking", "redacted_thinking"):
            raise BadRequestError(f"{here}: block type {kind!r} is not supported in an assistant message")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message, pending


def _user(blocks: list[dict[str, Any]], where: str, pending: dict[str, str]) -> list[dict[str, Any]]:
    """A user turn: its tool results first, as `tool` messages, then the rest as one user message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for position, block in enumerate(blocks):
        here = f"{where}.content[{position}]"
        kind = block["type"]
        if kind == "tool_result":
            results.append(_tool_result(block, here, pending))
        elif kind in ("text", "image", "document"):
            parts.append(_part(block, here))
        else:
            raise BadRequestError(f"{here}: block type {kind!r} is not supported in a user message")
    if len(parts) == 1 and set(parts[0]) == {"type", "text"}:
        results.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        results.append({"role": "user", "content": parts})
    return results


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise BadRequestError(f"{where} is a text block and needs a string 'text'")
    return text


def _part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """A text, image or document block as an OpenAI content part (a data URL for inline data)."""
    if block["type"] == "text":
        part: dict[str, Any] = {"type": "text", "text": _text(block, where)}
        if isinstance(block.get("cache_control"), dict):
            part["cache_control"] = block["cache_control"]
        return part
    url = _source_url(block.get("source"), where)
    if block["type"] == "image":
        return {"type": "image_url", "image_url": {"url": url}}
    if not url.startswith("data:"):
        raise BadRequestError(f"{where}: a document must be sent as base64 data")
    return {"type": "file", "file": {"file_data": url}}


def _source_url(source: Any, where: str) -> str:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url":
        url = source.get("url")
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
        raise BadRequestError(f"{where}.source.url must be an http(s) URL")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if isinstance(media_type, str) and media_type and isinstance(data, str) and data:
            return f"data:{media_type};base64,{data}"
        raise BadRequestError(f"{where}.source needs a string media_type and data")
    raise BadRequestError(f"{where}.source must be an object with type {' or '.join(MEDIA_SOURCES)}")


def _tool_use(block: dict[str, Any], where: str) -> tuple[str, str, str]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequestError(f"{where} is a tool_use block and needs a string 'id'")
    if not isinstance(name, str) or not name:
        raise BadRequestError(f"{where} is a tool_use block and needs a string 'name'")
    if not isinstance(arguments, dict):
        raise BadRequestError(f"{where}.input must be an object")
    return call_id, name, orjson.dumps(arguments).decode()


def _tool_result(block: dict[str, Any], where: str, pending: dict[str, str]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequestError(f"{where} is a tool_result block and needs a string 'tool_use_id'")
    if pending.pop(call_id, None) is None:
        raise BadRequestError(f"{where}: tool_result '{call_id}' answers no tool_use "
                              "of the assistant message before it")
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        raise BadRequestError(f"{where}.is_error must be a boolean")
    content = block.get("content", "")
    if isinstance(content, str) or content == []:
        text: Any = content or ""
    elif isinstance(content, list):
        text = []
        for position, part in enumerate(_blocks(content, where)):
            here = f"{where}.content[{position}]"
            if part["type"] not in ("text", "image"):
                raise BadRequestError(f"{here}: block type {part['type']!r} is not supported in a tool_result")
            text.append(_part(part, here))
    else:
        raise BadRequestError(f"{where}.content must be a string or an array of text and image blocks")
    if is_error:  # OpenAI's tool message has no error flag: the model is told in words
        text = f"Error: {text}" if isinstance(text, str) else [{"type": "text", "text": "Error:"}, *text]
    return {"role": "tool", "tool_call_id": call_id, "content": text}

