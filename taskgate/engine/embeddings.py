"""Embeddings through the engine: the provider's adapter, priced and recorded like every call.

There is no prompt, schema or fallback to apply, but the rest is the engine's as for a chat: the
parent span gives the trace (`SpanService.trace_for`), the price comes from the engine's price
book, and the span is recorded exactly once, as ok, error or cancelled (the client left, or the
server stopped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskgate.engine.spans import SpanService
from taskgate.errors import StreamCancelledError, TaskgateError
from taskgate.ids import new_id
from taskgate.providers.base import EmbeddingResponse, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.wire_capture import CaptureScope, capturing
from taskgate.store.base import SpanRecord

DEFAULT_EMBEDDING_NAME = "embeddings"


@dataclass(slots=True)
class EmbeddingTask:
    project_id: str
    model: str  # provider/model, as the caller wrote it
    provider: str
    provider_model: str
    inputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)  # forwarded to the adapter: dimensions, user
    tags: dict[str, Any] = field(default_factory=dict)
    name: str = DEFAULT_EMBEDDING_NAME
    parent_span_id: str | None = None


@dataclass(slots=True)
class EmbeddingResult:
    span_id: str
    trace_id: str
    response: EmbeddingResponse
    cost: float | None


Pricer = Callable[[str, str, Usage], float | None]  # (provider, model, usage) -> USD: `Engine.price`
CaptureFor = Callable[[str, str, str], CaptureScope | None]  # (project, span, trace): `GenerationService.scope`


class Embedder:
    def __init__(self, registry: ProviderRegistry, price: Pricer, spans: SpanService, capture_for: CaptureFor) -> None:
        self._registry = registry
        self._price = price
        self._spans = spans
        self._capture_for = capture_for

    async def embed(self, task: EmbeddingTask) -> EmbeddingResult:
        """The vectors, once the span is recorded. An unknown parent or an unconfigured provider is
        refused before anything is recorded."""
        trace_id = await self._spans.trace_for(task.project_id, task.parent_span_id)
        span_id = new_id()
        started = datetime.now(UTC)
        adapter = self._registry.adapter_for(task.provider)
        try:
            with capturing(self._capture_for(task.project_id, span_id, trace_id)):
                response = await adapter.embed(task.provider_model, task.inputs, task.options)
        except TaskgateError as exc:
            self._spans.record(_span(task, span_id, trace_id, started, None, exc))
            raise
        except asyncio.CancelledError:
            self._spans.record(_span(task, span_id, trace_id, started, None, StreamCancelledError(),
                                     status="cancelled"))
            raise
        span = _span(task, span_id, trace_id, started, response, None)
        span.cost = self._price(task.provider, task.provider_model, response.usage)
        self._spans.record(span)
        return EmbeddingResult(span_id=span.id, trace_id=trace_id, response=response, cost=span.cost)


def _summary(response: EmbeddingResponse | None) -> dict[str, int] | None:
    """Vectors are not worth keeping in a span: their count and size are."""
    if response is None:
        return None
    return {"count": len(response.vectors), "dimensions": len(response.vectors[0]) if response.vectors else 0}


def _span(task: EmbeddingTask, span_id: str, trace_id: str, started: datetime,
          response: EmbeddingResponse | None, error: TaskgateError | None, status: str | None = None) -> SpanRecord:
    tokens = response.usage.input_tokens if response else 0
    return SpanRecord(
        id=span_id,
        trace_id=trace_id,
        project_id=task.project_id,
        name=task.name,
        type="embedding",
        parent_id=task.parent_span_id,
        start_time=started,
        end_time=datetime.now(UTC),
        input=task.inputs,
        output=_summary(response),
        error=error.detail if error else None,
        status=status or ("error" if error else "ok"),
        model_chain=[task.model],
        model_used=task.model if response else None,
        models_failed=[task.model] if error else [],
        attempts=1,
        usage={"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens},
        tags=task.tags,
    )
