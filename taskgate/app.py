"""Wiring: the store, span recorder, providers and engine behind the three HTTP dialects."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from taskgate.api import compat, v2, v2_spans, v3
from taskgate.api.auth import Authenticator
from taskgate.api.logging import AccessLog
from taskgate.config import Settings
from taskgate.context import AppContext
from taskgate.engine.engine import Engine
from taskgate.providers.registry import ProviderRegistry
from taskgate.store import open_store
from taskgate.telemetry.recorder import SpanRecorder


class Runtime:
    """Holds the context once the lifespan has opened it; routes read it on each request."""

    ctx: AppContext


def create_app(settings: Settings) -> Starlette:
    runtime = Runtime()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(settings.effective_database_url)
        recorder = SpanRecorder(store, flush_interval=settings.span_flush_interval_s)
        await recorder.start()
        auth = Authenticator(store)
        await auth.bootstrap(settings.api_keys)
        providers = ProviderRegistry(settings)
        engine = Engine(store, recorder, providers, settings.default_model)
        runtime.ctx = AppContext(settings, store, auth, recorder, providers, engine)
        for module in (v2, v2_spans, v3, compat):
            app.router.routes.extend(module.routes(runtime.ctx))
        try:
            yield
        finally:
            await recorder.close()  # spans already accepted are written before exit
            await providers.aclose()
            await store.close()

    return Starlette(lifespan=lifespan, middleware=[Middleware(AccessLog)])
