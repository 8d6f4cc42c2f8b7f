"""Wiring: the store, span recorder, providers and engine behind the HTTP dialects.

Each dialect is one package with one route table (`taskgate/api/<dialect>/routes.py`); a new wire
format is one more entry in `DIALECTS`. How requests reach the handlers is `taskgate.server`'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.types import ASGIApp

from taskgate.api import metrics as metrics_endpoint
from taskgate.api.admin import routes as admin
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
from taskgate.engine.quotas.counters import LocalCounters
from taskgate.engine.quotas.gate import QuotaGate
from taskgate.engine.quotas.keys import KeyService
from taskgate.engine.quotas.ledger import UsageLedger
from taskgate.engine.rerank import RerankLimits
from taskgate.engine.secret_box import SecretBox, load_secret_key
from taskgate.providers.registry import ProviderRegistry
from taskgate.replicas.wiring import replication_for
from taskgate.server.access_log import flush_log
from taskgate.server.auth import Authenticator
from taskgate.server.dispatch import App
from taskgate.store import Store, open_store
from taskgate.store.database import private_directory
from taskgate.telemetry.generations import GenerationRecorder
from taskgate.telemetry.health_report import HealthReport
from taskgate.telemetry.journal import SpanJournal
from taskgate.telemetry.observability import Observability
from taskgate.telemetry.periodic import every
from taskgate.telemetry.recorder import SpanRecorder, peer_wait
from taskgate.telemetry.store_health import StoreHealth
from taskgate.ui import routes as ui

# each module's `routes(ctx)` is mounted in this order, and matched in it
DIALECTS = (v2, openai, anthropic, v3, admin, ui)


def create_app(settings: Settings) -> ASGIApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        private_directory(settings.data_dir)
        store = await open_store(settings.effective_database_url, migrate=not settings.store_prepared)
        shared_store = not settings.effective_database_url.startswith("sqlite")  # replicas may share it
        # Replicas, or workers on one SQLite file: another process may hold a span in its unwritten batch.
        peers = shared_store or settings.workers > 1
        journal = SpanJournal(settings.data_dir / "journal", settings.journal_max_bytes)
        store_health = StoreHealth(store)
        observability = Observability.from_settings(settings)
        recorder = SpanRecorder(store, flush_interval=settings.span_flush_interval_s,
                                peer_wait_s=peer_wait(settings.span_flush_interval_s, peers),
                                journal=journal, health=store_health, on_record=observability.on_record(),
                                on_write_through=observability.on_write_through())
        observability.watch(recorder)
        await recorder.start()  # first, what a process that died left in the journal
        # What replicas share through Redis; `replication.link` is the process's one Redis connection.
        replication = replication_for(store, settings)
        auth = Authenticator(store, replication.notices)
        await auth.bootstrap(settings.api_keys, settings.session_keys)
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
        quotas = _quota_gate(settings, store)
        engine = Engine(store, recorder, providers, settings.default_model, limits, secrets=secrets,
                        generations=generations,
                        local_models=settings.local_models,
                        dataset_embedding_model=settings.dataset_embedding_model or settings.default_embedding_model,
                        feedback_autosave_score=settings.feedback_autosave_score,
                        rerank_limits=RerankLimits(settings.rerank_max_documents, settings.rerank_max_text_chars,
                                                   tuple(settings.rerank_models)),
                        ocr_limits=OcrLimits(settings.ocr_max_bytes, tuple(settings.ocr_models)),
                        default_embedding_model=settings.default_embedding_model,
                        knowledge_rerank_model=settings.knowledge_rerank_model, meter=observability.metrics,
                        quotas=quotas, replication=replication)
        await replication.start()
        keys = KeyService(store.keys, quotas, providers.known(), engine.model_names.names,
                          on_change=auth.key_changed)
        health = HealthReport(store_health, journal, replication.redis_state if replication.link else None)
        ctx = AppContext(settings, auth, engine, health, keys, replication)
        for dialect in DIALECTS:
            app.mount(dialect.routes(ctx))
        app.mount(metrics_endpoint.routes(observability.metrics, auth, settings.metrics_public))
        if observability.metrics is not None:
            app.observe_request = observability.metrics.request
        PriceBook.warm()
        if settings.serves_store and settings.resume_ingestion:  # else another process resumes them, once
            await engine.knowledge_files.resume()
        try:
            async with every(0.25, flush_log), every(2.0, engine.functions.flush_hits), \
                    every(settings.span_flush_interval_s, generations.flush), \
                    every(settings.span_flush_interval_s, quotas.ledger.flush), observability.running():
                yield
        finally:
            await engine.knowledge_files.close()
            # Spans already accepted are written before exit; what the store does not take within
            # the grace period stays in the journal for the next start.
            await recorder.close(deadline_s=settings.shutdown_grace_s)
            await quotas.aclose()  # and the usage they counted
            await replication.close()
            await providers.aclose()
            await store.close()

    return App(lifespan)


def _quota_gate(settings: Settings, store: Store) -> QuotaGate:
    """Keys' and projects' limits, counted in Redis when TASKGATE_REDIS_URL is set (atomic across
    replicas), else in this process; budgets start from the usage totals in the store."""
    ledger = UsageLedger(store.keys)
    local = LocalCounters(ledger.spent)
    if settings.redis_url is None:
        return QuotaGate(local, ledger)
    from taskgate.engine.quotas.redis_counters import RedisCounters  # the redis client only where it is used

    return QuotaGate(RedisCounters(settings.redis_url, f"{settings.redis_prefix}limits:", ledger.spent, local), ledger)
