"""Embeddings through the engine: the provider's adapter, priced and recorded like every call.

There is no prompt or schema to apply, but the rest is the engine's as for a chat: the model name
is resolved as a chat's (a project's custom model, or an alias whose models are tried in order on
provider errors), the parent span gives the trace (`SpanService.trace_for`), the price comes from
the engine's price book, and the span is recorded exactly once, as ok, error or cancelled (the
client left, or the server stopped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskgate.engine.model_names import ModelNames
from taskgate.engine.router import Router
from taskgate.engine.spans import SpanService
from taskgate.engine.task import ModelChoice
from taskgate.errors import ProviderError, StreamCancelledError, TaskgateError
from taskgate.ids import new_id
from taskgate.providers.base import EmbeddingResponse, Usage
from taskgate.providers.wire_capture import CaptureScope, capturing
from taskgate.store.base import SpanRecord

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


@dataclass(slots=True)
class EmbeddingResult:
    span_id: str
    trace_id: str
    response: EmbeddingResponse
    cost: float | None


Pricer = Callable[[str, str, Usage], float | None]  # (provider, model, usage) -> USD: `Engine.price`
CaptureFor = Callable[[str, str, str], CaptureScope | None]  # (project, span, trace): `GenerationService.scope`


class Embedder:
    def __init__(self, router: Router, names: ModelNames, price: Pricer, spans: SpanService,
                 capture_for: CaptureFor) -> None:
        self._router = router
        self._names = names
        self._capture_for = capture_for
        self._price = price
        self._spans = spans
        self._capture_for = capture_for

    async def embed(self, task: EmbeddingTask) -> EmbeddingResult:
        """The vectors, once the span is recorded. An unknown parent, model name or an unconfigured
        provider is refused before anything is recorded."""
        trace_id = await self._spans.trace_for(task.project_id, task.parent_span_id)
        started = datetime.now(UTC)
        routes = self._router.resolve(await self._names.resolve(task.project_id, [ModelChoice(task.model)]))
        attempt = _Attempt(task, trace_id, started, [route.choice.name for route in routes])
        for position, route in enumerate(routes):
            try:
                with capturing(self._capture_for(task.project_id, attempt.span_id, trace_id)):
                    response = await route.adapter.embed(route.model, task.inputs, task.options)
            except ProviderError as exc:
                attempt.failed.append(route.choice.name)
                if position < len(routes) - 1:
                    continue
                self._spans.record(attempt.span(None, None, exc))
                raise
            except TaskgateError as exc:
                attempt.failed.append(route.choice.name)
                self._spans.record(attempt.span(None, None, exc))
                raise
            except asyncio.CancelledError:
                attempt.failed.append(route.choice.name)
                self._spans.record(attempt.span(None, None, StreamCancelledError(), status="cancelled"))
                raise
            span = attempt.span(route.choice.name, response, None)
            span.cost = self._price(route.provider, route.model, response.usage)
            self._spans.record(span)
            return EmbeddingResult(span_id=span.id, trace_id=trace_id, response=response, cost=span.cost)
        raise AssertionError("a model chain is never empty")


def _summary(response: EmbeddingResponse | None) -> dict[str, int] | None:
    """Vectors are not worth keeping in a span: their count and size are."""
    if response is None:
        return None
    return {"count": len(response.vectors), "dimensions": len(response.vectors[0]) if response.vectors else 0}


@dataclass(slots=True)
class _Attempt:
    """One embedding request on its way through its model chain: what its span is made of."""

    task: EmbeddingTask
    trace_id: str
    started: datetime
    chain: list[str]
    failed: list[str] = field(default_factory=list)
    span_id: str = field(default_factory=new_id)  # fixed first: the upstream exchange is captured under it

    def span(self, used: str | None, response: EmbeddingResponse | None, error: TaskgateError | None,
             status: str | None = None) -> SpanRecord:
        tokens = response.usage.input_tokens if response else 0
        task = self.task
        return SpanRecord(
            id=self.span_id,
            trace_id=self.trace_id,
            project_id=task.project_id,
            name=task.name,
            type="embedding",
            parent_id=task.parent_span_id,
            start_time=self.started,
            end_time=datetime.now(UTC),
            input=task.inputs,
            output=_summary(response),
            error=error.detail if error else None,
            status=status or ("error" if error else "ok"),
            model_chain=self.chain,
            model_used=used,
            models_failed=list(self.failed),
            attempts=len(self.failed) + (response is not None),
            usage={"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens},
            tags=task.tags,
        )
