"""Model chains and fallback: try each model in order, moving on only on retriable failures.

Fallback wraps the adapters instead of living in each one. A stream falls back only before its
first meaningful chunk: after that the caller has seen output and a switch would garble it. Every
upstream call is counted against the request's budget before it is made.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from taskgate.engine.limits import Budget
from taskgate.engine.task import ModelChoice
from taskgate.errors import ProviderError
from taskgate.providers.base import Adapter, ChatChunk, ChatRequest, ChatResponse, ImageRequest, ImageResponse
from taskgate.providers.catalog import split_model_name
from taskgate.providers.model_traits import UNKNOWN, ModelTraits
from taskgate.providers.registry import ProviderRegistry

CUSTOM_PROVIDER = "custom"  # the provider of a project's custom models: no preset, so no price
RequestBuilder = Callable[[ModelChoice, str], ChatRequest]
A = TypeVar("A")


@dataclass(slots=True)
class Route:
    """One chain entry, resolved to its adapter before any call is made."""

    choice: ModelChoice
    provider: str
    model: str
    adapter: Adapter


@dataclass(slots=True)
class Outcome:
    route: Route
    failed: list[str] = field(default_factory=list)  # "provider/model: why" for each model that failed first


class UpstreamMeter(Protocol):
    """Told of each upstream call and fallback (the Prometheus metrics); it must only note them."""

    def upstream(self, provider: str, model: str, seconds: float, ok: bool) -> None: ...

    def fallback(self, provider: str, model: str) -> None: ...


class Router:
    def __init__(self, registry: ProviderRegistry, default_model: str, meter: UpstreamMeter | None = None) -> None:
        self._registry = registry
        self._default = ModelChoice(name=default_model)
        self._meter = meter

    async def metered(self, route: Route, attempt: Awaitable[A]) -> A:
        """`attempt`, an upstream call on `route`, timed and counted by the meter (if any)."""
        if self._meter is None:
            return await attempt
        start = time.perf_counter()
        try:
            answer = await attempt
        except ProviderError:
            self._meter.upstream(route.provider, route.model, time.perf_counter() - start, False)
            raise
        self._meter.upstream(route.provider, route.model, time.perf_counter() - start, True)
        return answer

    def fell_back(self, route: Route) -> None:
        """`route` failed and the next model of its chain is tried."""
        if self._meter is not None:
            self._meter.fallback(route.provider, route.model)

    def resolve(self, models: list[ModelChoice]) -> list[Route]:
        """Resolve every entry up front, so a typo or a missing key is a 400 before any upstream call."""
        routes = []
        for choice in models or [self._default]:
            if choice.custom is not None:
                routes.append(Route(choice, CUSTOM_PROVIDER, choice.custom.identifier, choice.custom.adapter))
                continue
            provider, model = split_model_name(choice.name)
            routes.append(Route(choice, provider, model, self._registry.adapter_for(provider)))
        return routes

    def traits(self, route: Route) -> ModelTraits:
        """What the route's model can take (`model_traits`); a custom model's are unknown."""
        return UNKNOWN if route.provider == CUSTOM_PROVIDER else self._registry.traits(route.provider, route.model)

    def price_provider(self, provider: str) -> str | None:
        return None if provider == CUSTOM_PROVIDER else self._registry.price_provider(provider)

    # Not coroutines of their own: each hands back `_first_answer`'s, one frame fewer to pass
    # through every time the upstream exchange waits and resumes.
    def complete(self, routes: list[Route], build: RequestBuilder,
                 budget: Budget) -> Awaitable[tuple[ChatResponse, Outcome]]:
        return self._first_answer(routes, budget, lambda route: route.adapter.complete(
            build(route.choice, route.model)))

    def generate_images(self, routes: list[Route], build: Callable[[Route], ImageRequest],
                        budget: Budget) -> Awaitable[tuple[ImageResponse, Outcome]]:
        """Images from the first model of the chain that makes them; earlier failures fall back."""
        return self._first_answer(routes, budget, lambda route: route.adapter.generate_images(build(route)))

    async def _first_answer(self, routes: list[Route], budget: Budget,
                            ask: Callable[[Route], Awaitable[A]]) -> tuple[A, Outcome]:
        failed: list[str] = []
        meter = self._meter
        for position, route in enumerate(routes):
            budget.take_call(failed)
            try:
                attempt = ask(route)
                # `metered`, written out: every call comes this way, and a coroutine less is measurable
                start = time.perf_counter()
                try:
                    response = await attempt
                except ProviderError:
                    if meter is not None:
                        meter.upstream(route.provider, route.model, time.perf_counter() - start, False)
                    raise
                if meter is not None:
                    meter.upstream(route.provider, route.model, time.perf_counter() - start, True)
                return response, Outcome(route, failed)
            except ProviderError as exc:
                failed.append(f"{route.choice.name}: {exc.detail}")
                if position < len(routes) - 1:
                    self.fell_back(route)
                else:
                    if len(failed) == 1:
                        exc.models_failed = failed
                        raise  # as it is: `raise exc from exc` would make it its own cause, a cycle
                    raise _exhausted(exc, failed, route) from exc
        raise AssertionError("a model chain is never empty")

    async def open_stream(
        self, routes: list[Route], build: RequestBuilder, budget: Budget
    ) -> tuple[AsyncGenerator[ChatChunk, None], Outcome]:
        """A stream from the first model that produces output; earlier failures fall back."""
        failed: list[str] = []
        for position, route in enumerate(routes):
            budget.take_call(failed)
            chunks = route.adapter.stream(build(route.choice, route.model))
            try:
                head = await self.metered(route, _until_output(chunks))
                return _replay(head, chunks), Outcome(route, failed)
            except ProviderError as exc:
                await _close(chunks)
                failed.append(f"{route.choice.name}: {exc.detail}")
                if position < len(routes) - 1:
                    self.fell_back(route)
                else:
                    if len(failed) == 1:
                        exc.models_failed = failed
                        raise  # as it is: `raise exc from exc` would make it its own cause, a cycle
                    raise _exhausted(exc, failed, route) from exc
            except BaseException:
                await _close(chunks)
                raise
        raise AssertionError("a model chain is never empty")


def _exhausted(last: ProviderError, failed: list[str], route: Route) -> ProviderError:
    """The last model's error once every model of the chain has failed, with what happened to the
    earlier ones in its message, and every failure in `models_failed` for the call's span. (Raised
    where it is made: raising in a helper would keep the helper's frame, and with it the error, in
    the error's own traceback, a reference cycle.)"""
    earlier = "; ".join(failed[:-1])
    exhausted = type(last)(f"{route.choice.name}: {last.detail} (earlier models failed: {earlier})",
                           upstream_status=last.upstream_status)
    exhausted.models_failed = failed
    return exhausted


async def _until_output(chunks: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    """Chunks up to and including the first one that carries anything the caller would see."""
    head: list[ChatChunk] = []
    async for chunk in chunks:
        head.append(chunk)
        if chunk.text or chunk.tool_index is not None or chunk.finish_reason is not None:
            break
    return head


async def _replay(head: list[ChatChunk], rest: AsyncGenerator[ChatChunk, None]) -> AsyncGenerator[ChatChunk, None]:
    try:
        for chunk in head:
            yield chunk
        async for chunk in rest:
            yield chunk
    finally:
        await _close(rest)


async def _close(chunks: AsyncGenerator[ChatChunk, None]) -> None:
    """Close an adapter's stream; a failure while closing must not hide the error that made us close it."""
    with contextlib.suppress(Exception):
        await chunks.aclose()
