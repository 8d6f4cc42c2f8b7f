"""Wiring: the store, span recorder, providers and engine behind the three HTTP dialects.

Each dialect is one package with one route table (`taskgate/api/<dialect>/routes.py`); a new wire
format is one more entry in `DIALECTS`. How requests reach the handlers is `taskgate.server`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.types import ASGIApp

from taskgate.api.openai import routes as openai
from taskgate.api.v2 import routes as v2
from taskgate.api.v3 import routes as v3
from taskgate.config import Settings
from taskgate.context import AppContext
from taskgate.engine.cost import PriceBook
from taskgate.engine.engine import Engine
from taskgate.engine.limits import CallLimits
from taskgate.providers.registry import ProviderRegistry
from taskgate.server.access_log import flush_log
from taskgate.server.auth import Authenticator
from taskgate.server.dispatch import App
from taskgate.store import open_store
from taskgate.store.database import private_directory
from taskgate.telemetry.generations import GenerationRecorder
from taskgate.telemetry.periodic import every
from taskgate.telemetry.recorder import SpanRecorder, peer_wait

DIALECTS = (v2, openai, v3)  # each module's `routes(ctx)` is mounted in this order, and matched in it


def create_app(settings: Settings) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        private_directory(settings.data_dir)
        store = await open_store(settings.effective_database_url)
        shared_store = not settings.effective_database_url.startswith("sqlite")
        recorder = SpanRecorder(store, flush_interval=settings.span_flush_interval_s,
                                peer_wait_s=peer_wait(settings.span_flush_interval_s, shared_store))
        await recorder.start()
        auth = Authenticator(store)
        await auth.bootstrap(settings.api_keys)
        providers = ProviderRegistry(settings)
        limits = CallLimits(settings.max_attempts, settings.max_upstream_calls, settings.max_request_tokens)
        generations = GenerationRecorder(store)
        engine = Engine(store, recorder, providers, settings.default_model, limits, generations)
        ctx = AppContext(settings, auth, engine)
        for dialect in DIALECTS:
            app.mount(dialect.routes(ctx))
        PriceBook.warm()
        try:
            async with every(0.25, flush_log), every(2.0, engine.functions.flush_hits), \
                    every(settings.span_flush_interval_s, generations.flush):
                yield
        finally:
            await recorder.close()  # spans already accepted are written before exit
            await providers.aclose()
            await store.close()

    return App(lifespan)
