"""The OpenAI Chat Completions wire format, spoken by OpenAI and most other vendors.

Requests already use this shape, so the body is a pass-through: every option the caller gave
(temperature, seed, logprobs, reasoning_effort, ...) reaches the upstream untouched, which is what
the compat endpoint promises its callers, except the options a vendor's preset lists as refused
(OpenAI's refuses Anthropic's `thinking` and `top_k`): those are a 400 of ours, naming them, before any call.
Structured output is asked for as the model's traits say (`model_traits.StructuredMode`): OpenAI's
strict mode when the caller's schema can be made to fit its subset (`schema_support.openai_json_schema`),
a non-strict schema, JSON mode, or nothing for models whose API refuses `response_format`.
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import AsyncGenerator
from typing import Any

from taskgate.errors import BadRequestError, TaskgateError, UpstreamProtocolError, classify_upstream_status
from taskgate.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    GeneratedImage,
    ImageRequest,
    ImageResponse,
    RerankRequest,
    RerankResponse,
    StructuredOutput,
    ToolCall,
    Usage,
    no_rerank,
)
from taskgate.providers.catalog import ResolvedProvider, preset_family
from taskgate.providers.model_traits import StructuredMode, model_traits
from taskgate.providers.rerank_wire import post_rerank
from taskgate.providers.schema_support import openai_json_schema
from taskgate.providers.upstream_http import SSEEvent, UpstreamHTTP, event_object

# Body keys the adapter owns; an option of the same name must not clobber them.
_RESERVED = frozenset({"timeout", "model", "messages", "stream", "stream_options"})


class OpenAICompatAdapter:
    """An `Adapter` for any `/chat/completions` + `/embeddings` upstream, and its rerank endpoint if it has one."""

    def __init__(self, resolved: ResolvedProvider, *, timeout_s: float):
        preset = resolved.preset
        headers: dict[str, str] = {}
        if resolved.api_key:
            if preset.auth_header == "api-key":
                headers["api-key"] = resolved.api_key
            else:
                headers["authorization"] = f"Bearer {resolved.api_key}"
        self._refused = preset.refused_options
        self._rerank_path = preset.rerank_path
        self._family = preset_family(preset)
        self._http = UpstreamHTTP(preset.name, resolved.base_url, headers, timeout_s=timeout_s, query=resolved.query)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        body = build_body(request, self._http.provider, self._refused, self._structured_mode(request))
        data = await self._http.post_json("/chat/completions", body, request.options, request.extra_headers)
        return parse_completion(data, self._http.provider)

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        body = build_body(request, self._http.provider, self._refused, self._structured_mode(request))
        body["stream"] = True
        caller_options = request.options.get("stream_options")
        body["stream_options"] = {**(caller_options if isinstance(caller_options, dict) else {}), "include_usage": True}
        reader = _StreamReader(self._http.provider)
        return self._http.stream_pieces("/chat/completions", body, request.options, request.extra_headers,
                                        pieces_of=reader.feed, finished=reader.finished, last_event="[DONE]")

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        body = {k: v for k, v in options.items() if k not in _RESERVED and k != "input"}
        body["model"] = model
        body["input"] = inputs
        data = await self._http.post_json("/embeddings", body, options)
        return parse_embeddings(data, self._http.provider)

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        if self._rerank_path is None:
            raise no_rerank(self._http.provider, "(OpenAI-compatible, configured without `rerank_path`)")
        return await post_rerank(self._http, self._rerank_path, request)
    async def generate_images(self, request: ImageRequest) -> ImageResponse:
        """`/images/generations`: the engine's options as they are (n, size, quality, response_format, ...)."""
        body = {k: v for k, v in request.options.items() if k not in _RESERVED and k != "prompt"}
        body["model"] = request.model
        body["prompt"] = request.prompt
        data = await self._http.post_json("/images/generations", body, request.options, request.extra_headers)
        return parse_images(data, self._http.provider)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _structured_mode(self, request: ChatRequest) -> StructuredMode:
        if request.structured is None:
            return StructuredMode.STRICT  # not consulted
        return model_traits(self._family, request.model).structured


def build_body(request: ChatRequest, provider: str, refused: tuple[str, ...] = (),
               structured_mode: StructuredMode = StructuredMode.STRICT) -> dict[str, Any]:
    """The Chat Completions body: the caller's options as they are, the adapter's own keys over them;
    an option the vendor refuses (its preset's `refused_options`) is a 400 of ours."""
    for name in refused:
        if request.options.get(name) is not None:
            raise BadRequestError(f"option '{name}' is not supported by provider '{provider}' "
                                  "(OpenAI-compatible chat completions); send it to an anthropic/... model")
    body = {k: v for k, v in request.options.items() if k not in _RESERVED}
    body["model"] = request.model
    body["messages"] = request.messages
    if request.tools:
        body["tools"] = request.tools
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.structured is not None and structured_mode is not StructuredMode.PROMPT:
        body["response_format"] = _response_format(request.structured, structured_mode)
    return body


def _response_format(structured: StructuredOutput, mode: StructuredMode) -> dict[str, Any]:
    if mode is StructuredMode.JSON_OBJECT:
        return {"type": "json_object"}
    schema = openai_json_schema(structured)
    if mode is StructuredMode.JSON_SCHEMA and schema["strict"]:
        schema = {"name": schema["name"], "schema": structured.schema, "strict": False}
    return {"type": "json_schema", "json_schema": schema}


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
        logprobs=_token_logprobs(choice) if choice.get("logprobs") is not None else None,  # asked for: rarely
    )


def _token_logprobs(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The per-token log probabilities of a choice or chunk choice, when the caller asked for them
    (`logprobs: true`) and the upstream sent them; entries are passed on as the upstream gave them."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return content if isinstance(content, list) else None


def parse_images(data: Any, provider: str) -> ImageResponse:
    try:
        images = [_image(item) for item in data["data"]]
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = Usage(input_tokens=int(usage.get("input_tokens") or 0),
                       output_tokens=int(usage.get("output_tokens") or 0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a vendor's odd answer is a 502, not a 500
        raise UpstreamProtocolError(f"{provider} sent an images response without image data") from exc
    if not images:
        raise UpstreamProtocolError(f"{provider} sent an images response with no images")
    return ImageResponse(images, tokens)


def _image(item: Any) -> GeneratedImage:
    b64, url, revised = item.get("b64_json"), item.get("url"), item.get("revised_prompt")
    if not isinstance(b64, str) and not isinstance(url, str):
        raise ValueError("an image needs b64_json or url")
    return GeneratedImage(b64=b64 if isinstance(b64, str) else None, url=url if isinstance(url, str) else None,
                          revised_prompt=revised if isinstance(revised, str) else None)


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

    __slots__ = ("_done", "_provider", "_seen_tools", "_usage")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._seen_tools: set[int] = set()
        self._usage: Usage | None = None
        self._done = False

    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        if event.data == b"[DONE]":
            self._done = True
            # Some servers repeat running usage on every chunk: the last goes out once, at the end.
            return [ChatChunk(usage=self._usage)] if self._usage is not None else []
        pieces, usage = _event_pieces(event.data, self._seen_tools, self._provider)
        self._usage = usage or self._usage
        return pieces

    def finished(self) -> bool:
        return self._done


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
            logprobs = _token_logprobs(choice) if choice.get("logprobs") is not None else None  # asked for: rarely
            pieces.append(ChatChunk(text=content, logprobs=logprobs))
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
