"""The Anthropic Messages wire format. Shape translation lives in `anthropic_translate`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from taskgate.errors import BadRequestError, UpstreamProtocolError
from taskgate.providers.anthropic.translate import (
    StreamTranslator,
    build_body,
    parse_message,
    structured_tool_name,
)
from taskgate.providers.base import ChatChunk, ChatRequest, ChatResponse, EmbeddingResponse, PieceReader
from taskgate.providers.catalog import ResolvedProvider
from taskgate.providers.upstream_http import SSEEvent, UpstreamHTTP

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicAdapter:
    """An `Adapter` for `POST {base_url}/v1/messages`."""

    def __init__(self, resolved: ResolvedProvider, *, timeout_s: float):
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if resolved.api_key:
            headers["x-api-key"] = resolved.api_key
        self._http = UpstreamHTTP(resolved.preset.name, resolved.base_url, headers, timeout_s=timeout_s)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        data = await self._http.post_json("/v1/messages", build_body(request), request.options,
                                          request.extra_headers)
        name = structured_tool_name(request.structured) if request.structured else None
        return parse_message(data, name, self._http.provider)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        body = build_body(request)
        body["stream"] = True
        name = structured_tool_name(request.structured) if request.structured else None
        translator = StreamTranslator(name, self._http.provider)

        def pieces_of(event: SSEEvent) -> list[ChatChunk]:
            return translator.feed(event.event, event.data)

        reader = PieceReader(pieces_of, lambda: translator.done)
        async with self._http.open_sse("/v1/messages", body, request.options, request.extra_headers,
                                        finished=lambda: translator.done) as batches:
            async for batch in batches:
                for piece in reader.read(batch):
                    yield piece
                if translator.done:
                    return
        raise UpstreamProtocolError(f"{self._http.provider}: stream ended early (no message_stop)")

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        raise BadRequestError(
            f"provider '{self._http.provider}' (Anthropic) has no embeddings API; "
            "use an OpenAI-compatible provider"
        )

    async def aclose(self) -> None:
        await self._http.aclose()
