"""Cohere's own API (`https://api.cohere.com/v2`): its rerank endpoint, the Cohere-style rerank wire.

Cohere's chat and embed endpoints are not OpenAI-shaped, so through this preset they are a clear
400; Cohere's chat models are reachable through its OpenAI compatibility API, configured as an
OpenAI-compatible vendor in `TASKGATE_PROVIDERS`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from taskgate.errors import BadRequestError
from taskgate.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
    RerankRequest,
    RerankResponse,
)
from taskgate.providers.catalog import ResolvedProvider
from taskgate.providers.rerank_wire import post_rerank
from taskgate.providers.upstream_http import UpstreamHTTP


class CohereAdapter:
    """An `Adapter` that reranks; chat and embeddings are refused by name."""

    def __init__(self, resolved: ResolvedProvider, *, timeout_s: float):
        headers = {"authorization": f"Bearer {resolved.api_key}"} if resolved.api_key else {}
        self._rerank_path = resolved.preset.rerank_path or "/rerank"
        self._http = UpstreamHTTP(resolved.preset.name, resolved.base_url, headers, timeout_s=timeout_s)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        raise self._refused("chat")

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        raise self._refused("chat")

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        raise self._refused("embeddings")

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        return await post_rerank(self._http, self._rerank_path, request)

    async def generate_images(self, request: ImageRequest) -> ImageResponse:
        raise self._refused("image generation")

    async def aclose(self) -> None:
        await self._http.aclose()

    def _refused(self, what: str) -> BadRequestError:
        return BadRequestError(f"provider '{self._http.provider}' (Cohere's rerank API) does not serve {what}; "
                               "add Cohere's OpenAI compatibility API to TASKGATE_PROVIDERS for that")
