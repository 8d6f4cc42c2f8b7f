"""Wiring: the store, span recorder, providers and engine behind the three HTTP dialects.

The ASGI app is a bare Starlette Router: the dialects' handlers already turn every error into its
wire body and log their own access line, so middlewares would only add cost to every send.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from taskgate.api import compat, v2, v2_spans, v3
from taskgate.api.auth import Authenticator
from taskgate.api.http import error_response
from taskgate.api.logging import flush_log, log_access
from taskgate.config import Settings
from taskgate.context import AppContext
from taskgate.engine.cost import PriceBook
from taskgate.engine.engine import Engine
from taskgate.errors import NotFoundError
from taskgate.providers.registry import ProviderRegistry
from taskgate.store import open_store
from taskgate.telemetry.periodic import every
from taskgate.telemetry.recorder import SpanRecorder


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    start = time.perf_counter()
    path = Request(scope).url.path
    response: Response = error_response(NotFoundError(f"no such endpoint: {scope['method']} {path}"))
    await response(scope, receive, send)
    log_access(scope, response.status_code, start)


def create_app(settings: Settings) -> ASGIApp:
    router = Router(default=not_found)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(settings.effective_database_url)
        recorder = SpanRecorder(store, flush_interval=settings.span_flush_interval_s)
        await recorder.start()
        auth = Authenticator(store)
        await auth.bootstrap(settings.api_keys)
        providers = ProviderRegistry(settings)
        engine = Engine(store, recorder, providers, settings.default_model)
        ctx = AppContext(settings, store, auth, recorder, providers, engine)
        for module in (v2, compat, v3, v2_spans):  # the call endpoints first: routes are matched in order
            router.routes.extend(module.routes(ctx))
        PriceBook.warm()
        # Everything loaded so far (libraries, the price table) lives as long as the process: keep
        # it out of the collector's sight, so a full collection never stalls a request on it.
        gc.collect()
        gc.freeze()
        try:
            async with every(0.25, flush_log), every(2.0, engine.functions.flush_hits):
                yield
        finally:
            await recorder.close()  # spans already accepted are written before exit
            await providers.aclose()
            await store.close()

    router.lifespan_context = lifespan
    return router
