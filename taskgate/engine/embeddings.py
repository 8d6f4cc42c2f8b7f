"""Embeddings through the engine: the provider's adapter, priced and recorded like every call
(the chain, trace, price and span are `engine.provider_calls`')."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskgate.engine.provider_calls import ProviderCall, ProviderCalls
from taskgate.providers.base import EmbeddingResponse

DEFAULT_EMBEDDING_NAME = "embeddings"


@dataclass(slots=True)
class EmbeddingTask:
    project_id: str
    model: str  # provider/model, or a custom model or alias of the project, as the caller wrote it
    inputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)  # forwarded to the adapter: dimensions, user
    tags: dict[str, Any] = field(default_factory=dict)
    name: str = DEFAULT_EMBEDDING_NAME
    parent_span_id: str | None = None
    trace_id: str | None = None  # the parent's, when it is not stored yet (see ProviderCall.trace_id)


@dataclass(slots=True)
class EmbeddingResult:
    span_id: str
    trace_id: str
    response: EmbeddingResponse
    cost: float | None


class Embedder:
    def __init__(self, calls: ProviderCalls) -> None:
        self._calls = calls

    async def embed(self, task: EmbeddingTask) -> EmbeddingResult:
        """The vectors, once the span is recorded."""
        call = ProviderCall(project_id=task.project_id, model=task.model, name=task.name, span_type="embedding",
                            input=task.inputs, tags=task.tags, parent_span_id=task.parent_span_id,
                            trace_id=task.trace_id)
        done = await self._calls.run(
            call, lambda route: route.adapter.embed(route.model, task.inputs, task.options), _summary)
        return EmbeddingResult(span_id=done.span_id, trace_id=done.trace_id, response=done.response, cost=done.cost)


def _summary(response: EmbeddingResponse) -> dict[str, int]:
    """Vectors are not worth keeping in a span: their count and size are."""
    return {"count": len(response.vectors), "dimensions": len(response.vectors[0]) if response.vectors else 0}
