"""An in-memory adapter that answers from a script: the engine's test seam, and a stand-in for
anyone embedding the engine without a provider.

Each request takes the next step of the script: a `ChatResponse` to answer with, a list of
`ChatChunk`s to stream, or a `TaskgateError` to raise (a `ProviderError` is what makes the router
fall back). A non-streamed request given chunks gets them collected into one response, and a
streamed request given a response gets it as chunks, so one script serves `run` and `stream`
alike. Every request is kept in `requests`, as the adapter received it (its message list copied:
the engine goes on extending its own list for a re-ask), and `streams_open` counts the streams
begun and not yet closed, so a test can see that a caller who left closed the upstream stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import replace
from typing import Any

from taskgate.errors import ProviderError, TaskgateError
from taskgate.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ChunkCollector,
    EmbeddingResponse,
    GeneratedImage,
    ImageRequest,
    ImageResponse,
    RerankRequest,
    RerankResponse,
    Usage,
    no_rerank,
)

Piece = ChatChunk | TaskgateError  # an error among the pieces fails the stream after what came before it
Answer = ChatResponse | Sequence[Piece]
Step = Answer | TaskgateError


class ScriptedAdapter:
    """Answers each request with the next step of its script; an empty script is a ProviderError."""

    def __init__(self, steps: Iterable[Step] = (), *, delay_s: float = 0.0) -> None:
        self._steps: deque[Step] = deque(steps)
        self.delay_s = delay_s  # wait before answering, to let a caller leave or a timeout pass
        self.requests: list[ChatRequest] = []
        self.embeddings: list[list[str]] = []
        self.image_requests: list[ImageRequest] = []
        self.streams_open = 0
        self.closed = False

    def add(self, *steps: Step) -> None:
        self._steps.extend(steps)

    async def _next(self, request: ChatRequest) -> Answer:
        """Record the request, then give its step after `delay_s`; raise it when it is an error."""
        self.requests.append(replace(request, messages=list(request.messages)))
        step = self._steps.popleft() if self._steps else ProviderError(
            "the scripted adapter has no answer left", upstream_status=500)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if isinstance(step, TaskgateError):
            raise step
        return step

    async def complete(self, request: ChatRequest) -> ChatResponse:
        step = await self._next(request)
        return step if isinstance(step, ChatResponse) else collect(step)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        self.streams_open += 1
        try:
            step = await self._next(request)
            for chunk in chunks_of(step) if isinstance(step, ChatResponse) else step:
                if isinstance(chunk, TaskgateError):  # a failure after some output
                    raise chunk
                yield chunk
        finally:
            self.streams_open -= 1

    async def embed(self, model: str, inputs: list[str], options: dict[str, Any]) -> EmbeddingResponse:
        """One vector per input: its length and a checksum, enough to tell inputs apart."""
        self.embeddings.append(list(inputs))
        vectors = [[float(len(text)), float(sum(map(ord, text)) % 997)] for text in inputs]
        return EmbeddingResponse(vectors=vectors, usage=Usage(input_tokens=sum(len(t) for t in inputs)), model=model)

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        raise no_rerank("scripted", "(a scripted test double)")
    async def generate_images(self, request: ImageRequest) -> ImageResponse:
        """One inline image per `n`, its bytes a digest of the prompt, enough to tell prompts apart."""
        self.image_requests.append(request)
        count = request.options.get("n", 1)
        digest = base64.b64encode(hashlib.sha256(request.prompt.encode()).digest()).decode()
        return ImageResponse([GeneratedImage(b64=digest) for _ in range(count if isinstance(count, int) else 1)])

    async def aclose(self) -> None:
        self.closed = True


def chunks_of(response: ChatResponse) -> list[ChatChunk]:
    """A response as a stream would deliver it: its text word by word, its tool calls, then the end."""
    chunks = [ChatChunk(text=word) for word in _words(response.text)]
    for index, call in enumerate(response.tool_calls):
        chunks.append(ChatChunk(tool_index=index, tool_id=call.id, tool_name=call.name, tool_arguments=call.arguments))
    chunks.append(ChatChunk(finish_reason=response.finish_reason, usage=response.usage, notes=tuple(response.notes)))
    return chunks


def collect(pieces: Iterable[Piece]) -> ChatResponse:
    """Pieces as one response, the way the engine accumulates a stream; an error among them is raised."""
    collector = ChunkCollector()
    for chunk in pieces:
        if isinstance(chunk, TaskgateError):
            raise chunk
        collector.add(chunk)
    return collector.response()


def _words(text: str) -> list[str]:
    words: list[str] = []
    start = 0
    for position, char in enumerate(text):
        if char == " " and position > start:
            words.append(text[start:position])
            start = position
    if start < len(text):
        words.append(text[start:])
    return words
