"""Rerank through the engine: documents ordered by relevance to a query, by a provider's rerank API.

The request is bounded here, for every dialect alike (the operator's `RerankLimits`); the model
chain, trace, price and span are `engine.provider_calls`'. A model whose provider has no rerank API
(the local one among them, until the knowledge bases bring ranking by the default embedding model)
is the adapter's clear 400. Prices: genai-prices has token prices for a few rerank models and none
for search units (Cohere's unit), so the cost is the token price where one is known, else None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskgate.config import DEFAULT_RERANK_MAX_DOCUMENTS, DEFAULT_RERANK_MAX_TEXT_CHARS, DEFAULT_RERANK_MODELS
from taskgate.engine.provider_calls import ProviderCall, ProviderCalls
from taskgate.engine.router import Route
from taskgate.errors import BadRequestError
from taskgate.providers.base import RerankRequest, RerankResponse

DEFAULT_RERANK_NAME = "rerank"


@dataclass(frozen=True, slots=True)
class RerankLimits:
    """TASKGATE_RERANK_MAX_DOCUMENTS and TASKGATE_RERANK_MAX_TEXT_CHARS, and the listed models."""

    max_documents: int = DEFAULT_RERANK_MAX_DOCUMENTS
    max_text_chars: int = DEFAULT_RERANK_MAX_TEXT_CHARS  # the query's, and each document's
    models: tuple[str, ...] = DEFAULT_RERANK_MODELS  # what `GET /v2/rerank/models` lists, when configured


@dataclass(slots=True)
class RerankTask:
    project_id: str
    model: str  # provider/model, or a custom model or alias of the project, as the caller wrote it
    query: str
    documents: list[str]
    top_n: int | None = None  # None: every document, ranked
    tags: dict[str, Any] = field(default_factory=dict)
    name: str = DEFAULT_RERANK_NAME
    parent_span_id: str | None = None
    trace_id: str | None = None  # the parent's, when it is not stored yet (see ProviderCall.trace_id)


@dataclass(slots=True)
class RerankResult:
    span_id: str
    trace_id: str
    response: RerankResponse
    cost: float | None
    model: str  # the chain entry that answered


class Reranker:
    def __init__(self, calls: ProviderCalls, limits: RerankLimits) -> None:
        self._calls = calls
        self.limits = limits

    async def rerank(self, task: RerankTask) -> RerankResult:
        """The ranking, at most `top_n` long, once the span is recorded; a request out of bounds is
        refused before anything is sent or recorded."""
        self._check(task)
        call = ProviderCall(project_id=task.project_id, model=task.model, name=task.name, span_type="rerank",
                            input={"query": task.query, "documents": len(task.documents), "top_n": task.top_n},
                            tags=task.tags, parent_span_id=task.parent_span_id, trace_id=task.trace_id)

        async def send(route: Route) -> RerankResponse:
            response = await route.adapter.rerank(RerankRequest(model=route.model, query=task.query,
                                                                documents=task.documents, top_n=task.top_n))
            if task.top_n is not None:
                del response.ranking[task.top_n:]  # a vendor that ignored top_n is held to it
            return response

        done = await self._calls.run(call, send, _summary)
        return RerankResult(span_id=done.span_id, trace_id=done.trace_id, response=done.response, cost=done.cost,
                            model=done.model)

    def _check(self, task: RerankTask) -> None:
        limits = self.limits
        if not task.documents:
            raise BadRequestError("documents must hold at least one document")
        if len(task.documents) > limits.max_documents:
            raise BadRequestError(f"documents may hold at most {limits.max_documents} documents on this server "
                                  f"(TASKGATE_RERANK_MAX_DOCUMENTS), got {len(task.documents)}")
        if not task.query.strip():
            raise BadRequestError("query must not be empty")
        if len(task.query) > limits.max_text_chars:
            raise BadRequestError(f"query may be at most {limits.max_text_chars} characters "
                                  "(TASKGATE_RERANK_MAX_TEXT_CHARS)")
        for index, document in enumerate(task.documents):
            if len(document) > limits.max_text_chars:
                raise BadRequestError(f"documents[{index}] is longer than {limits.max_text_chars} characters "
                                      "(TASKGATE_RERANK_MAX_TEXT_CHARS)")
        if task.top_n is not None and not 1 <= task.top_n <= len(task.documents):
            raise BadRequestError(f"the number of results asked for (top_k) must be from 1 to the number of "
                                  f"documents ({len(task.documents)}), got {task.top_n}")


def _summary(response: RerankResponse) -> dict[str, Any]:
    """The ranking is small and is the answer: the span keeps it, with what the vendor billed."""
    return {"results": [{"index": index, "relevance_score": score} for index, score in response.ranking],
            "search_units": response.search_units}
