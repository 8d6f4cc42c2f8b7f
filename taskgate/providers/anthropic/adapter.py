"""The Anthropic Messages wire format. Shape translation lives in `translate`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from taskgate.errors import BadRequestError
from taskgate.providers.anthropic.translate import (
    StreamTranslator,
    build_body,
    parse_message,
    structured_tool_name,
)
from taskgate.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
    RerankRequest,
    RerankResponse,
    no_rerank,
)
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

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        body = build_body(request)
        body["stream"] = True
        name = structured_tool_name(request.structured) if request.structured else None
        translator = StreamTranslator(name, self._http.provider)

        def pieces_of(event: SSEEvent) -> list[ChatChunk]:
            return translator.feed(event.event, event.data)

        return self._http.stream_pieces("/v1/messages", body, request.options, request.extra_headers,
                                        pieces_of=pieces_of, finished=lambda: translator.done,
                                        last_event="message_stop")

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        raise BadRequestError(
            f"provider '{self._http.provider}' (Anthropic) has no embeddings API; "
            "use an OpenAI-compatible provider"
        )

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        raise no_rerank(self._http.provider, "(Anthropic)")
    async def generate_images(self, request: ImageRequest) -> ImageResponse:
        raise BadRequestError(f"provider '{self._http.provider}' (Anthropic) has no image generation API; "
                              "use an OpenAI-compatible provider's image model, e.g. openai/gpt-image-1")

    async def aclose(self) -> None:
        await self._http.aclose()
