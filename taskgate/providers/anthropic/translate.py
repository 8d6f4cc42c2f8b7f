"""OpenAI Chat Completions shapes <-> Anthropic Messages shapes, field by field.

Pure functions and one small stream state machine, with no I/O, so each mapping can be tested
on its own. Anthropic requires alternating roles, a top-level system prompt, an explicit
max_tokens and tool calls as content blocks; the OpenAI shapes have none of these constraints.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from taskgate.anthropic_wire import ERROR_STATUS, FINISH_REASONS
from taskgate.errors import BadRequestError, TaskgateError, UpstreamProtocolError, classify_upstream_status
from taskgate.providers.base import ChatChunk, ChatRequest, ChatResponse, StructuredOutput, ToolCall, Usage
from taskgate.providers.schema_support import safe_schema_name
from taskgate.providers.upstream_http import event_object

DEFAULT_MAX_TOKENS = 4096
STRUCTURED_TOOL_DESCRIPTION = "Respond with the result"
_PASSTHROUGH_OPTIONS = ("temperature", "top_p", "top_k", "thinking")


# ---- request ----------------------------------------------------------------------------------


def build_body(request: ChatRequest) -> dict[str, Any]:
    """The Messages API body for an OpenAI-shaped request."""
    system, messages = translate_messages(request.messages)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if system:
        body["system"] = system
    body.update(translate_options(request.options))
    tools = [translate_tool(tool) for tool in request.tools or ()]
    tool_choice = translate_tool_choice(request.tool_choice)
    if request.structured is not None:
        name = structured_tool_name(request.structured)
        tools.append({
            "name": name,
            "description": STRUCTURED_TOOL_DESCRIPTION,
            "input_schema": request.structured.schema,
        })
        tool_choice = {"type": "tool", "name": name}
    if tools:
        body["tools"] = tools
    if tool_choice is not None:
        if request.options.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = tool_choice
    return body


def structured_tool_name(structured: StructuredOutput) -> str:
    return safe_schema_name(structured.name or "output")


def translate_options(options: dict[str, Any]) -> dict[str, Any]:
    """Sampling options Anthropic understands; OpenAI-only keys are dropped, not forwarded."""
    out: dict[str, Any] = {key: options[key] for key in _PASSTHROUGH_OPTIONS if options.get(key) is not None}
    max_tokens = options.get("max_tokens", options.get("max_completion_tokens"))
    out["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    stop = options.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    # OpenAI's free-form `metadata` has no Anthropic meaning; only a user id carries over.
    metadata = options.get("metadata")
    user = options.get("user") or (metadata.get("user_id") if isinstance(metadata, dict) else None)
    if user:
        out["metadata"] = {"user_id": str(user)}
    return out


def translate_messages(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, alternating Anthropic messages) from OpenAI chat messages."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequestError(f"messages[{position}] must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_plain_text(message.get("content"), position))
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), position)
        elif role == "assistant":
            blocks = _assistant_blocks(message, position)
        elif role == "tool":
            blocks = [_tool_result(message, position)]
        else:
            raise BadRequestError(f"messages[{position}] has unsupported role {role!r}")
        if not blocks:
            continue  # Anthropic rejects empty content; an empty turn carries nothing anyway
        wire_role = "assistant" if role == "assistant" else "user"
        if out and out[-1]["role"] == wire_role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": wire_role, "content": blocks})
    for message in out:
        content = message["content"]
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            message["content"] = content[0]["text"]
    return "\n\n".join(part for part in system if part), out


def translate_tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(
        tool.get("function"), dict
    ):
        raise BadRequestError(f"only function tools can be sent to Anthropic, got {str(tool)[:100]}")
    function = tool["function"]
    if not function.get("name"):
        raise BadRequestError("every tool needs a function name")
    out = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def translate_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and function.get("name"):
        return {"type": "tool", "name": function["name"]}
    raise BadRequestError(f"unsupported tool_choice {choice!r}")


def _plain_text(content: Any, position: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequestError(f"messages[{position}]: a system message may hold only text parts")
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise BadRequestError(f"messages[{position}].content must be a string or a list of parts")


def _content_blocks(content: Any, position: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequestError(f"messages[{position}].content must be a string or a list of parts")
    return [block for part in content if (block := _part_block(part, position)) is not None]


def _part_block(part: Any, position: int) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise BadRequestError(f"messages[{position}]: a text part needs a string 'text'")
        if not text:
            return None
        block: dict[str, Any] = {"type": "text", "text": text}
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        return block
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return {"type": "image", "source": _media_source(url, position, "image")}
    if kind == "file":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        return {"type": "document", "source": _document_source(file.get("file_data"), position)}
    raise BadRequestError(f"messages[{position}]: content part type {kind!r} is not supported by Anthropic")


def _document_source(url: Any, position: int) -> dict[str, Any]:
    """A PDF goes as base64; a text file (the engine has checked it is UTF-8) as Anthropic's plain-text source."""
    source = _media_source(url, position, "file")
    media_type = source.get("media_type", "")
    if media_type.startswith("text/") or media_type == "application/json":
        try:
            text = base64.b64decode(source["data"], validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise BadRequestError(f"messages[{position}]: the file is not base64 UTF-8 text") from exc
        return {"type": "text", "media_type": "text/plain", "data": text}
    return source


def _media_source(url: Any, position: int, what: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise BadRequestError(f"messages[{position}]: the {what} part needs a URL")
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if sep and encoding == "base64" and media_type and data:
            return {"type": "base64", "media_type": media_type, "data": data}
        raise BadRequestError(
            f"messages[{position}]: the {what} data URL must be 'data:<type>;base64,<data>'"
        )
    raise BadRequestError(f"messages[{position}]: the {what} URL must be http(s) or a base64 data URL")


def _assistant_blocks(message: dict[str, Any], position: int) -> list[dict[str, Any]]:
    blocks = _content_blocks(message.get("content"), position)
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise BadRequestError(f"messages[{position}]: every tool call needs a function name")
        arguments = function.get("arguments") or "{}"
        label = f"tool call {call.get('id')!r} ({function['name']})"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(
                f"messages[{position}]: {label} has arguments that are not JSON: {exc}"
            ) from exc
        if not isinstance(parsed, dict):
            raise BadRequestError(f"messages[{position}]: {label} arguments must be a JSON object")
        blocks.append(
            {"type": "tool_use", "id": call.get("id") or "", "name": function["name"], "input": parsed}
        )
    return blocks


def _tool_result(message: dict[str, Any], position: int) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequestError(f"messages[{position}]: a tool message needs 'tool_call_id'")
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        result["content"] = content
    elif content is not None:
        result["content"] = _content_blocks(content, position)
    return result


# ---- response ---------------------------------------------------------------------------------


def parse_usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_tokens=int(raw.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(raw.get("cache_creation_input_tokens") or 0),
    )


def finish_reason(stop_reason: Any, structured: bool) -> str:
    reason = FINISH_REASONS.get(stop_reason, "stop")
    # The forced output tool is the answer itself, not a call the caller must run.
    return "stop" if structured and reason == "tool_calls" else reason


def parse_message(data: Any, structured_name: str | None, provider: str) -> ChatResponse:
    """A ChatResponse from a Messages API body; with `structured_name`, that tool's input is the text."""
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(content, list) or data.get("type") != "message":
        raise UpstreamProtocolError(f"{provider}: not a Messages API response: {str(data)[:200]}")
    texts: list[str] = []
    structured_text: str | None = None
    calls: list[ToolCall] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input", {})).decode()
            name = str(block.get("name", ""))
            if structured_name is not None and structured_text is None and name == structured_name:
                structured_text = arguments
            else:
                calls.append(ToolCall(id=str(block.get("id", "")), name=name, arguments=arguments))
    try:
        finish = finish_reason(data.get("stop_reason"), structured_name is not None)
        usage = parse_usage(data.get("usage"))
    except (TypeError, ValueError) as exc:
        raise UpstreamProtocolError(f"{provider}: malformed Messages API response: {str(data)[:200]}") from exc
    return ChatResponse(
        text=structured_text if structured_text is not None else "".join(texts),
        tool_calls=calls,
        finish_reason=finish,
        usage=usage,
        model=str(data.get("model") or ""),
        stop_sequence=stop_sequence(data.get("stop_reason"), data.get("stop_sequence")),
    )


def stop_sequence(stop_reason: Any, sequence: Any) -> str | None:
    """The stop sequence an answer ended on: Anthropic names it only with stop_reason `stop_sequence`."""
    return sequence if stop_reason == "stop_sequence" and isinstance(sequence, str) else None


def error_from_event(error: Any, provider: str) -> TaskgateError:
    """Map an Anthropic error object (`{"type": "overloaded_error", "message": ...}`) to our errors."""
    if not isinstance(error, dict):
        return classify_upstream_status(500, f"{provider}: {error}")
    status = ERROR_STATUS.get(str(error.get("type")), 500)
    return classify_upstream_status(status, f"{provider}: {error.get('message') or error.get('type')}")


class StreamTranslator:
    """Turns Messages API stream events into ChatChunks, one event at a time.

    OpenAI numbers tool calls 0, 1, 2...; Anthropic numbers every content block. The OpenAI
    index is therefore the tool_use block's ordinal among tool_use blocks only, so text (or
    thinking) blocks interleaved between calls do not shift it.
    """

    def __init__(self, structured_name: str | None, provider: str):
        self.structured_name = structured_name
        self.provider = provider
        self.done = False
        self._usage = Usage()
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index
        self._structured_block: int | None = None

    def feed(self, event: str, data: bytes) -> list[ChatChunk]:
        if event == "ping":
            return []
        payload = event_object(data, self.provider)
        kind = payload.get("type", event)
        try:
            return self._handle(kind, payload)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UpstreamProtocolError(f"{self.provider}: malformed {kind} event: {data[:200]!r}") from exc

    def _handle(self, kind: str, payload: dict[str, Any]) -> list[ChatChunk]:
        if kind == "content_block_delta":
            return self._delta(payload["index"], payload["delta"])
        if kind == "content_block_start":
            return self._block_start(payload["index"], payload["content_block"])
        if kind == "message_start":
            self._merge_usage(payload["message"].get("usage"))
            return []
        if kind == "message_delta":
            self._merge_usage(payload.get("usage"))
            delta = payload["delta"]
            reason = delta.get("stop_reason")
            if reason is None:
                return []
            return [ChatChunk(finish_reason=finish_reason(reason, self.structured_name is not None),
                              stop_sequence=stop_sequence(reason, delta.get("stop_sequence")))]
        if kind == "message_stop":
            self.done = True
            return [ChatChunk(usage=self._usage)]
        if kind == "error":
            raise error_from_event(payload.get("error"), self.provider)
        return []  # content_block_stop, ping, and event types added after this was written

    def _block_start(self, index: int, block: dict[str, Any]) -> list[ChatChunk]:
        kind = block.get("type")
        if kind == "text":
            return [ChatChunk(text=block["text"])] if block.get("text") else []
        if kind != "tool_use":
            return []
        if self._structured_block is None and block["name"] == self.structured_name:
            self._structured_block = index
            return []
        tool_index = len(self._tool_index)
        self._tool_index[index] = tool_index
        return [ChatChunk(tool_index=tool_index, tool_id=block["id"], tool_name=block["name"])]

    def _delta(self, index: int, delta: dict[str, Any]) -> list[ChatChunk]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [ChatChunk(text=delta["text"])] if delta["text"] else []
        if kind != "input_json_delta" or not delta.get("partial_json"):
            return []  # thinking and signature deltas are not part of the answer
        if index == self._structured_block:
            return [ChatChunk(text=delta["partial_json"])]
        if index in self._tool_index:
            return [ChatChunk(tool_index=self._tool_index[index], tool_arguments=delta["partial_json"])]
        raise UpstreamProtocolError(f"{self.provider}: input_json_delta for unknown block {index}")

    def _merge_usage(self, raw: Any) -> None:
        """message_start carries the input side; message_delta the (cumulative) output side."""
        if not isinstance(raw, dict):
            return
        update = parse_usage(raw)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
            if getattr(update, name):
                setattr(self._usage, name, getattr(update, name))
