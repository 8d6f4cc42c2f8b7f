"""One request to a provider endpoint that is not chat (embeddings, rerank), priced and recorded.

There is no prompt or schema to apply, but the rest is the engine's as for a chat: the model name
is resolved as a chat's (a project's custom model, or an alias whose models are tried in order on
provider errors), the parent span gives the trace (`SpanService.trace_for`), the upstream exchange
is captured as a generation, the price comes from the engine's price book, and the span is recorded
exactly once, as ok, error or cancelled (the client left, or the server stopped). The services that
use it (`engine.embeddings`, `engine.rerank`) say only what is sent and what the span keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from taskgate.engine.model_names import ModelNames
from taskgate.engine.quotas.gate import QuotaGate
from taskgate.engine.router import Route, Router
from taskgate.engine.spans import SpanService
from taskgate.engine.task import ModelChoice
from taskgate.errors import JournalUnavailableError, ProviderError, StreamCancelledError, TaskgateError
from taskgate.ids import new_id
from taskgate.providers.base import Usage
from taskgate.providers.wire_capture import CaptureScope, capturing
from taskgate.store.base import SpanRecord


class Metered(Protocol):
    """A provider answer that says what it used."""

    @property
    def usage(self) -> Usage: ...


R = TypeVar("R", bound=Metered)
Pricer = Callable[[str, str, Usage], float | None]  # (provider, model, usage) -> USD: `Engine.price`
CaptureFor = Callable[[str, str, str], CaptureScope | None]  # (project, span, trace): `GenerationService.scope`


@dataclass(slots=True)
class ProviderCall:
    """What the span of a one-shot provider call is made of, besides the answer."""

    project_id: str
    model: str  # provider/model, or a custom model or alias of the project, as the caller wrote it
    name: str
    span_type: str  # "embedding", "rerank"
    input: Any  # what the span keeps of the request
    tags: dict[str, Any] = field(default_factory=dict)
    parent_span_id: str | None = None
    # The parent's trace when the caller knows it: a parent that is being made (a knowledge query's
    # span, recorded once its search is done) is not in the store yet to be looked up.
    trace_id: str | None = None


@dataclass(slots=True)
class Answered(Generic[R]):
    span_id: str
    trace_id: str
    response: R
    cost: float | None
    model: str  # the chain entry that answered, as the chain names it


class ProviderCalls:
    def __init__(self, router: Router, names: ModelNames, price: Pricer, spans: SpanService,
                 capture_for: CaptureFor, quotas: QuotaGate | None = None) -> None:
        self._router = router
        self._quotas = quotas
        self._names = names
        self._price = price
        self._spans = spans
        self._capture_for = capture_for

    async def run(self, call: ProviderCall, send: Callable[[Route], Awaitable[R]],
                  summary: Callable[[R], Any]) -> Answered[R]:
        """`send` to each model of the chain until one answers; `summary` is the span's output. An
        unknown parent, model name or an unconfigured provider is refused before anything is recorded."""
        self._spans.admit()
        trace_id = call.trace_id or await self._spans.trace_for(call.project_id, call.parent_span_id)
        started = datetime.now(UTC)
        routes = self._router.resolve(await self._names.resolve(call.project_id, [ModelChoice(call.model)]))
        if self._quotas is not None:
            await self._quotas.admit([route.choice.name for route in routes])
        attempt = _Attempt(call, trace_id, started, [route.choice.name for route in routes])
        for position, route in enumerate(routes):
            try:
                with capturing(self._capture_for(call.project_id, attempt.span_id, trace_id)):
                    response = await self._router.metered(route, send(route))
            except ProviderError as exc:
                attempt.failed.append(route.choice.name)
                if position < len(routes) - 1:
                    self._router.fell_back(route)
                    continue
                self._spans.record(attempt.span(None, None, None, exc))
                raise
            except TaskgateError as exc:
                attempt.failed.append(route.choice.name)
                self._spans.record(attempt.span(None, None, None, exc))
                raise
            except asyncio.CancelledError:
                attempt.failed.append(route.choice.name)
                self._spans.record(attempt.span(None, None, None, StreamCancelledError(), status="cancelled"))
                raise
            span = attempt.span(route.choice.name, response.usage, summary(response), None)
            span.cost = self._price(route.provider, route.model, response.usage)
            if not self._spans.record(span):  # the journal refused it: no answer without a record
                error = JournalUnavailableError("the call's record could not be journaled (the disk is full); "
                                                "it was not answered; try again shortly")
                self._spans.record(attempt.span(route.choice.name, response.usage, None, error))
                raise error
            return Answered(span_id=span.id, trace_id=trace_id, response=response, cost=span.cost,
                            model=route.choice.name)
        raise AssertionError("a model chain is never empty")


@dataclass(slots=True)
class _Attempt:
    """One request on its way through its model chain: what its span is made of."""

    call: ProviderCall
    trace_id: str
    started: datetime
    chain: list[str]
    failed: list[str] = field(default_factory=list)
    span_id: str = field(default_factory=new_id)  # fixed first: the upstream exchange is captured under it

    def span(self, used: str | None, usage: Usage | None, output: Any, error: TaskgateError | None,
             status: str | None = None) -> SpanRecord:
        tokens = usage.input_tokens if usage else 0
        call = self.call
        return SpanRecord(
            id=self.span_id,
            trace_id=self.trace_id,
            project_id=call.project_id,
            name=call.name,
            type=call.span_type,
            parent_id=call.parent_span_id,
            start_time=self.started,
            end_time=datetime.now(UTC),
            input=call.input,
            output=output,
            error=error.detail if error else None,
            status=status or ("error" if error else "ok"),
            model_chain=self.chain,
            model_used=used,
            models_failed=list(self.failed),
            attempts=len(self.failed) + (usage is not None),
            usage={"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens},
            tags=call.tags,
        )
