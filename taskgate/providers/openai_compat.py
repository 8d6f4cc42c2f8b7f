"""The OpenAI Chat Completions wire format, spoken by OpenAI and most other vendors.

Requests already use this shape, so the body is a pass-through: every option the caller gave
(temperature, seed, logprobs, reasoning_effort, ...) reaches the upstream untouched, which is what
the compat endpoint promises its callers.
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import AsyncGenerator
from typing import Any

from taskgate.errors import TaskgateError, UpstreamProtocolError, classify_upstream_status
from taskgate.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    PieceReader,
    ToolCall,
    Usage,
)
from taskgate.providers.catalog import ResolvedProvider
from taskgate.providers.schema_support import safe_schema_name
from taskgate.providers.upstream_http import SSEEvent, UpstreamHTTP, event_object

# Body keys the adapter owns; an option of the same name must not clobber them.
_RESERVED = frozenset({"timeout", "model", "messages", "stream", "stream_options"})


class OpenAICompatAdapter:
    """An `Adapter` for any `/chat/completions` + `/embeddings` upstream."""

    def __init__(self, resolved: ResolvedProvider, *, timeout_s: float):
        preset = resolved.preset
        headers: dict[str, str] = {}
        if resolved.api_key:
            if preset.auth_header == "api-key":
                headers["api-key"] = resolved.api_key
            else:
                headers["authorization"] = f"Bearer {resolved.api_key}"
        self._http = UpstreamHTTP(preset.name, resolved.base_url, headers, timeout_s=timeout_s)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        data = await self._http.post_json("/chat/completions", build_body(request), request.options,
                                          request.extra_headers)
        return parse_completion(data, self._http.provider)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        body = build_body(request)
        body["stream"] = True
        caller_options = request.options.get("stream_options")
        body["stream_options"] = {**(caller_options if isinstance(caller_options, dict) else {}), "include_usage": True}
        provider = self._http.provider
        reader = _StreamReader(provider)
        pieces = PieceReader(reader.feed, lambda: reader.done)
        async with self._http.open_sse("/chat/completions", body, request.options, request.extra_headers,
                                        finished=lambda: reader.done) as batches:
            async for batch in batches:
                for piece in pieces.read(batch):
                    yield piece
                if reader.done:
                    if reader.usage is not None:
                        yield ChatChunk(usage=reader.usage)
                    return
        raise UpstreamProtocolError(f"{provider}: stream ended early (no [DONE])")

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        body = {k: v for k, v in options.items() if k not in _RESERVED and k != "input"}
        body["model"] = model
        body["input"] = inputs
        data = await self._http.post_json("/embeddings", body, options)
        return parse_embeddings(data, self._http.provider)

    async def aclose(self) -> None:
        await self._http.aclose()


def build_body(request: ChatRequest) -> dict[str, Any]:
    body = {k: v for k, v in request.options.items() if k not in _RESERVED}
    body["model"] = request.model
    body["messages"] = request.messages
    if request.tools:
        body["tools"] = request.tools
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.structured is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": safe_schema_name(request.structured.name),
                "schema": request.structured.schema,
                "strict": request.structured.strict,
            },
        }
    return body


def parse_usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    completion_details = raw.get("completion_tokens_details") or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        cache_read_tokens=int(prompt_details.get("cached_tokens") or 0),
    )


def parse_completion(data: Any, provider: str) -> ChatResponse:
    try:
        choice = data["choices"][0]
        message = choice["message"]
        tool_calls = [
            ToolCall(id=call.get("id") or "", name=call["function"]["name"],
                     arguments=call["function"].get("arguments") or "")
            for call in message.get("tool_calls") or ()
        ]
        usage = parse_usage(data.get("usage"))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise UpstreamProtocolError(f"{provider}: not a chat completion: {str(data)[:200]}") from exc
    finish = choice.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
    text = message.get("content")
    if not text and message.get("refusal"):
        # A refusal is not an answer; saying so lets the engine report it instead of parsing "".
        finish = "content_filter"
    return ChatResponse(
        text=text if isinstance(text, str) else "",
        tool_calls=tool_calls,
        finish_reason=finish,
        usage=usage,
        model=str(data.get("model") or ""),
    )


def parse_embeddings(data: Any, provider: str) -> EmbeddingResponse:
    try:
        rows = sorted(data["data"], key=lambda row: row.get("index", 0))
        vectors = [_vector(row["embedding"]) for row in rows]
        usage = Usage(input_tokens=int((data.get("usage") or {}).get("prompt_tokens") or 0))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UpstreamProtocolError(f"{provider}: not an embeddings response: {str(data)[:200]}") from exc
    return EmbeddingResponse(vectors=vectors, usage=usage, model=str(data.get("model") or ""))


def _vector(raw: Any) -> list[float]:
    if isinstance(raw, str):  # encoding_format=base64: little-endian float32
        values = array("f")
        values.frombytes(base64.b64decode(raw))
        return values.tolist()
    if not isinstance(raw, list):
        raise TypeError("embedding is neither a list nor base64")
    return raw


class _StreamReader:
    """One streamed completion, event by event: its pieces, the usage it reports, and its end."""

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._seen_tools: set[int] = set()
        self.usage: Usage | None = None
        self.done = False

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        if event.data == b"[DONE]":
            self.done = True
            return []
        pieces, usage = _event_pieces(event.data, self._seen_tools, self._provider)
        # Some servers repeat running usage on every chunk: keep the last, send it once.
        self.usage = usage or self.usage
        return pieces


def _event_pieces(data: bytes, seen_tools: set[int], provider: str) -> tuple[list[ChatChunk], Usage | None]:
    """One stream event: its pieces and the usage it reports, or the error it carries, raised."""
    chunk = event_object(data, provider)
    if chunk.get("error"):
        raise _stream_error(chunk["error"], provider)
    try:
        return _chunk_pieces(chunk, seen_tools, provider), parse_usage(chunk["usage"]) if chunk.get("usage") else None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UpstreamProtocolError(f"{provider}: malformed stream chunk: {data[:200]!r}") from exc


def _chunk_pieces(chunk: dict[str, Any], seen_tools: set[int], provider: str) -> list[ChatChunk]:
    pieces: list[ChatChunk] = []
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue  # with n > 1 only the first choice is ours to stream
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            if not isinstance(content, str):
                raise TypeError("delta.content is not a string")
            pieces.append(ChatChunk(text=content))
        for position, call in enumerate(delta.get("tool_calls") or ()):
            pieces.append(_tool_piece(call, position, seen_tools, provider))
        if choice.get("finish_reason"):
            pieces.append(ChatChunk(finish_reason=choice["finish_reason"]))
    return pieces


def _tool_piece(call: Any, position: int, seen_tools: set[int], provider: str) -> ChatChunk:
    if not isinstance(call, dict):
        raise UpstreamProtocolError(f"{provider}: malformed tool call fragment: {call!r}")
    index = call.get("index", position)
    function = call.get("function") or {}
    piece = ChatChunk(tool_index=index, tool_arguments=function.get("arguments") or "")
    if index not in seen_tools:
        # Only the first fragment names the call; some servers repeat id/name on every fragment.
        seen_tools.add(index)
        piece.tool_id = call.get("id") or ""
        piece.tool_name = function.get("name") or ""
    return piece


def _stream_error(error: Any, provider: str) -> TaskgateError:
    """An error object sent inside a 200 stream: map it by its type/code like an HTTP status."""
    if not isinstance(error, dict):
        return classify_upstream_status(500, f"{provider}: {error}")
    kind = f"{error.get('type') or ''} {error.get('code') or ''}"
    status = error.get("status") if isinstance(error.get("status"), int) else None
    if status is None:
        status = 429 if "rate_limit" in kind else 500
    return classify_upstream_status(status, f"{provider}: {error.get('message') or kind.strip()}")
