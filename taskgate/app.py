"""Wiring: the store, span recorder, providers and engine behind the HTTP dialects.

Each dialect is one package with one route table (`taskgate/api/<dialect>/routes.py`); a new wire
format is one more entry in `DIALECTS`. How requests reach the handlers is `taskgate.server`'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.types import ASGIApp

from taskgate.api.anthropic import routes as anthropic
from taskgate.api.openai import routes as openai
from taskgate.api.v2 import routes as v2
from taskgate.api.v3 import routes as v3
from taskgate.config import Settings
from taskgate.context import AppContext
from taskgate.engine.cost import PriceBook
from taskgate.engine.engine import Engine
from taskgate.engine.limits import CallLimits
from taskgate.engine.ocr import OcrLimits
from taskgate.engine.rerank import RerankLimits
from taskgate.engine.secret_box import SecretBox, load_secret_key
from taskgate.providers.registry import ProviderRegistry
from taskgate.server.access_log import flush_log
from taskgate.server.auth import Authenticator
from taskgate.server.dispatch import App
from taskgate.store import open_store
from taskgate.store.database import private_directory
from taskgate.telemetry.generations import GenerationRecorder
from taskgate.telemetry.periodic import every
from taskgate.telemetry.recorder import SpanRecorder, peer_wait

DIALECTS = (v2, openai, anthropic, v3)  # each module's `routes(ctx)` is mounted in this order, and matched in it


def create_app(settings: Settings) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        private_directory(settings.data_dir)
        store = await open_store(settings.effective_database_url, migrate=not settings.store_prepared)
        shared_store = not settings.effective_database_url.startswith("sqlite")  # replicas may share it
        # Replicas, or workers on one SQLite file: another process may hold a span in its unwritten batch.
        peers = shared_store or settings.workers > 1
        recorder = SpanRecorder(store, flush_interval=settings.span_flush_interval_s,
                                peer_wait_s=peer_wait(settings.span_flush_interval_s, peers))
        await recorder.start()
        auth = Authenticator(store)
        await auth.bootstrap(settings.api_keys)
        providers = ProviderRegistry(settings)
        limits = CallLimits(settings.max_attempts, settings.max_upstream_calls, settings.max_request_tokens,
                            settings.max_media_bytes)
        if shared_store and not settings.secret_key:
            logging.getLogger("taskgate.serve").warning(
                "TASKGATE_SECRET_KEY is unset: custom models' API keys are sealed with the key in %s; every "
                "replica sharing this database must use the same key, so set TASKGATE_SECRET_KEY on all of them",
                settings.data_dir)
        secrets = SecretBox(load_secret_key(settings.secret_key, settings.data_dir))
        generations = GenerationRecorder(store)
        engine = Engine(store, recorder, providers, settings.default_model, limits, secrets=secrets,
                        generations=generations,
                        local_models=settings.local_models,
                        dataset_embedding_model=settings.dataset_embedding_model or settings.default_embedding_model,
                        feedback_autosave_score=settings.feedback_autosave_score,
                        rerank_limits=RerankLimits(settings.rerank_max_documents, settings.rerank_max_text_chars,
                                                   tuple(settings.rerank_models)),
                        ocr_limits=OcrLimits(settings.ocr_max_bytes, tuple(settings.ocr_models)),
                        default_embedding_model=settings.default_embedding_model,
                        knowledge_rerank_model=settings.knowledge_rerank_model)
        ctx = AppContext(settings, auth, engine)
        for dialect in DIALECTS:
            app.mount(dialect.routes(ctx))
        PriceBook.warm()
        if settings.resume_ingestion:
            await engine.knowledge_files.resume()
        try:
            async with every(0.25, flush_log), every(2.0, engine.functions.flush_hits), \
                    every(settings.span_flush_interval_s, generations.flush):
                yield
        finally:
            await engine.knowledge_files.close()
            await recorder.close()  # spans already accepted are written before exit
            await providers.aclose()
            await store.close()

    return App(lifespan)
