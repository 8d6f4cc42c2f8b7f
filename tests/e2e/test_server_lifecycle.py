"""The server process as a whole: shutdown flushes spans, one log line per request, heartbeats, Postgres."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
import time

import sqlalchemy as sa

from taskgate.server import access_log
from taskgate.server.access_log import log_access
from taskgate.store import open_store
from taskgate.store.database import normalize_url
from tests.fakes.common import Behaviour
from tests.harness import ServerProcess
from tests.http_client import get, post, sse_events


def stored_span(url: str, span_id: str):
    async def read():
        store = await open_store(url)
        try:
            projects = await store.ensure_project("default")
            return await store.get_span(projects, span_id)
        finally:
            await store.close()

    return asyncio.run(read())


def test_spans_accepted_before_shutdown_are_flushed(fake_provider, tmp_path):
    server = ServerProcess(fake_provider, tmp_path / "srv", env={"TASKGATE_SPAN_FLUSH_SECONDS": "3600"})
    server.start()
    try:
        span_id = post(f"{server.url}/v2/call", {"name": "late", "input": "x"}).json()["span_id"]
    finally:
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the parent sees why it stopped
        assert server.stop() in (0, -15)
    span = stored_span(f"sqlite:///{tmp_path / 'srv' / 'taskgate.db'}", span_id)
    assert span is not None and span.name == "late" and span.status == "ok"


def test_one_structured_log_line_per_request(server, fake):
    post(f"{server.url}/v2/call", {"name": "logged", "input": "x"})
    get(f"{server.url}/health", key=None)
    time.sleep(0.6)  # lines are written in batches, at most a quarter second late
    lines = [json.loads(line) for line in server.stderr_text().splitlines() if line.startswith("{")]
    assert all("ts" in line for line in lines)  # every line the server writes is JSON
    lines = [line for line in lines if "path" in line]
    calls = [line for line in lines if line["path"] == "/v2/call"]
    assert calls and calls[-1]["status"] == 200 and calls[-1]["method"] == "POST" and calls[-1]["ms"] > 0
    assert any(line["path"] == "/health" for line in lines)


def test_heartbeat_comment_during_upstream_silence(fake_provider, tmp_path):
    server = ServerProcess(fake_provider, tmp_path / "hb", env={"TASKGATE_HEARTBEAT_SECONDS": "0.2"})
    server.start()
    try:
        fake_provider.clear()
        fake_provider.script("gpt-4o-mini", Behaviour(text="slow words here", event_delay_s=0.7))
        reply = post(f"{server.url}/v2/call/stream", {"name": "hb", "input": "x"})
    finally:
        server.stop()
        fake_provider.clear()
    raw = reply.body.decode()
    assert ": keepalive" in raw
    events = [json.loads(e) for e in sse_events(reply)]
    assert "".join(e.get("delta", "") for e in events[1:]) == "slow words here"


def test_serves_calls_on_postgres(fake_provider, tmp_path, postgres_url):
    server = ServerProcess(fake_provider, tmp_path / "pg", env={"TASKGATE_DATABASE_URL": postgres_url})
    server.start()
    try:
        first = post(f"{server.url}/v2/call", {"name": "pg-fn", "input": "x",
                                                "configuration": {"invocation.cache.ttl": 30}}).json()
        second = post(f"{server.url}/v2/call", {"name": "pg-fn", "input": "x",
                                                 "configuration": {"invocation.cache.ttl": 30}}).json()
        assert second["cached"] is True
        span = get(f"{server.url}/v3/spans/{first['span_id']}").json()["data"]
        assert span["name"] == "pg-fn"
        assert get(f"{server.url}/v3/functions/pg-fn").status == 200
    finally:
        server.stop()
    assert not (tmp_path / "pg" / "taskgate.db").exists()


def test_openai_compatible_vendors_by_configuration_alone(fake_provider, tmp_path):
    providers = json.dumps({"acme": {"base_url": fake_provider.openai_base_url, "key_env": "ACME_KEY"}})
    server = ServerProcess(fake_provider, tmp_path / "vendors", env={
        "TASKGATE_PROVIDERS": providers, "ACME_KEY": "acme-secret",
        "GROQ_API_KEY": "groq-secret", "GROQ_BASE_URL": fake_provider.openai_base_url,
    })
    server.start()
    try:
        fake_provider.clear()
        acme = post(f"{server.url}/v2/call", {"name": "v", "input": "x", "model": "acme/house-model"}).json()
        assert acme["message"].startswith("Hello from house-model")
        assert fake_provider.requests[-1].headers["authorization"] == "Bearer acme-secret"
        assert acme["cost"] is None  # no price table for a custom vendor: never a guess
        groq = post(f"{server.url}/v2/call", {"name": "v", "input": "x", "model": "groq/llama-3.1-8b-instant"}).json()
        assert groq["message"].startswith("Hello from llama-3.1-8b-instant")
        assert fake_provider.requests[-1].headers["authorization"] == "Bearer groq-secret"
    finally:
        server.stop()
        fake_provider.clear()


def test_a_broken_cache_never_fails_a_call(fake_provider, tmp_path):
    server = ServerProcess(fake_provider, tmp_path / "nocache")
    server.start()
    try:
        with sqlite3.connect(tmp_path / "nocache" / "taskgate.db") as db:
            db.execute("DROP TABLE cache_entries")  # an operator fault the server must survive
        body = {"name": "c", "input": "x", "configuration": {"invocation.cache.ttl": 60}}
        first = post(f"{server.url}/v2/call", body)
        second = post(f"{server.url}/v2/call", body)
        assert first.status == second.status == 200
        assert second.json()["cached"] is False
    finally:
        server.stop()


def test_two_replicas_share_one_postgres(fake_provider, tmp_path, postgres_url):
    replicas = [ServerProcess(fake_provider, tmp_path / name, env={"TASKGATE_DATABASE_URL": postgres_url})
                for name in ("a", "b")]
    for replica in replicas:
        replica.start()
    a, b = replicas
    try:
        body = {"name": "shared-fn", "input": "x", "configuration": {"invocation.cache.ttl": 60}}
        first = post(f"{a.url}/v2/call", {**body, "instructions": "one"}).json()
        assert post(f"{b.url}/v2/call", {**body, "instructions": "one"}).json()["cached"] is True
        post(f"{b.url}/v2/call", {**body, "instructions": "two"})
        time.sleep(5.5)  # past the time a replica trusts what it knows of a function
        post(f"{a.url}/v2/call", {**body, "instructions": "one"})  # A must notice B's revision
        revisions = get(f"{b.url}/v3/functions/shared-fn/revisions").json()["revisions"]
        assert len(revisions) == 3
        # A has not written its batch yet: B's look-up by id waits one flush interval for it
        assert get(f"{b.url}/v3/spans/{first['span_id']}").status == 200
        # A span made through the span API is in the store when its POST returns, so B can take it as
        # a parent at once (a call span would wait in A's batch for up to a second)
        trace = post(f"{a.url}/v3/spans", {"name": "trace-root"}).json()["data"]
        engine = sa.create_engine(normalize_url(postgres_url))
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT count(*) FROM spans WHERE id = :id"), {"id": trace["id"]})
                assert rows.scalar_one() == 1
        finally:
            engine.dispose()
        child = post(f"{b.url}/v2/call", {**body, "instructions": "one", "parent_span_id": trace["id"]})
        assert child.status == 200
    finally:
        for replica in replicas:
            replica.stop()


def test_access_lines_go_through_logging_when_the_host_configured_it(caplog):
    """An app made with `create_app` but without `configure_logging` (embedded in another server):
    its access lines must reach the host's logging, not be written to a stream it never chose."""
    with caplog.at_level(logging.INFO, logger="taskgate.access"):
        log_access({"method": "GET", "path": "/embedded"}, 200, time.perf_counter())
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "taskgate.access"]
    assert [(line["path"], line["status"]) for line in lines] == [("/embedded", 200)]


def test_a_broken_log_stream_never_fails_a_request(monkeypatch):
    """stderr gone (a closed pipe, a full disk): the access line is lost, the request must not be."""

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(access_log, "_configured", True)
    monkeypatch.setattr(access_log._handler, "stream", Broken())
    monkeypatch.setattr(access_log.log, "isEnabledFor", lambda level: True)
    log_access({"method": "GET", "path": "/x"}, 200, time.perf_counter())  # must not raise
