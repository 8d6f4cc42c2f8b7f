"""Work stops when nobody waits for it any more (issue 13, finding 3).

A client that leaves a call, streamed or not, cancels the upstream request, the re-asks and the
fallbacks, and the call's span is recorded as cancelled. A server told to stop cancels what still
runs once its grace period is over, answers the clients still waiting with a 503, and writes
those spans before it exits. A real `taskgate serve` against the fake.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from typing import Any

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.schemas import CAPITAL_SCHEMA
from tests.span_lookup import recorded_span, wait_until

SLOW_S = 2.0  # long enough that a client leaves before the answer; short, should the test fail
CHAIN = ["openai/slow-down", "openai/fallback"]  # the first fails slowly; the second must never be asked


def open_request(server: ServerProcess, path: str, body: dict[str, Any],
                 headers: dict[str, str] | None = None) -> socket.socket:
    """Send a request on a raw connection and return it unread, so the test decides when to leave."""
    payload = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Authorization: Bearer {server.api_key}",
             "Content-Type: application/json", f"Content-Length: {len(payload)}",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return connection


def read_to_end(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def leave_after(server: ServerProcess, fake: FakeProvider, upstream_requests: int, path: str,
                body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Make the request, and hang up once the upstream has seen `upstream_requests` requests."""
    with open_request(server, path, body, headers):
        assert wait_until(lambda: len(fake.requests) >= upstream_requests)


def assert_cancelled(server: ServerProcess, fake: FakeProvider, name: str, upstream_requests: int) -> None:
    """The in-flight upstream request was dropped, nothing followed it, and the span says cancelled."""
    assert fake.wait_disconnects(1, timeout=5), "the upstream request was not closed"
    span = recorded_span(server, name)
    assert span["status"] == "cancelled"
    assert len(fake.requests) == upstream_requests, [r.model for r in fake.requests]


def chat(name: str, stream: bool) -> tuple[dict[str, Any], dict[str, str]]:
    body = {"model": CHAIN[0], "fallback_models": CHAIN[1:], "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    return body, {"x-opper-name": name}


# path for (dialect, streamed), and how the body names the call
CALLS: dict[tuple[str, bool], str] = {
    ("v2", False): "/v2/call", ("v2", True): "/v2/call/stream",
    ("v3", False): "/v3/call", ("v3", True): "/v3/call/stream",
    ("compat", False): "/v3/compat/chat/completions", ("compat", True): "/v3/compat/chat/completions",
}


@pytest.mark.parametrize(("dialect", "streamed"), list(CALLS))
def test_a_departed_client_stops_its_call_and_its_fallbacks(server, fake, dialect, streamed):
    """Streamed or not, before any output: the slow first model's request is dropped, the fallback
    is never asked, and the span is recorded once, as cancelled."""
    name = f"leaves-{dialect}-{'stream' if streamed else 'call'}"
    fake.script("slow-down", Behaviour(status=503, delay_s=SLOW_S))
    if dialect == "compat":
        body, headers = chat(name, streamed)
    else:
        body, headers = {"name": name, "input": "x", "model": CHAIN}, {}
    leave_after(server, fake, 1, CALLS[dialect, streamed], body, headers)
    assert_cancelled(server, fake, name, upstream_requests=1)


def test_a_departed_client_stops_the_schema_re_asks_and_is_logged_as_499(server, fake):
    never_fits = Behaviour(json={"capital": 1})
    fake.script("never-fits", never_fits, Behaviour(json={"capital": 1}, delay_s=SLOW_S), never_fits)
    before = access_statuses(server, "/v2/call").count(499)
    body = {"name": "leaves-re-asks", "input": "x", "output_schema": CAPITAL_SCHEMA, "model": "openai/never-fits",
            "configuration": {"invocation.structured_generation.max_attempts": 3}}
    leave_after(server, fake, 2, "/v2/call", body)
    assert_cancelled(server, fake, "leaves-re-asks", upstream_requests=2)
    assert wait_until(lambda: access_statuses(server, "/v2/call").count(499) > before, timeout=5)


def test_a_departed_client_stops_its_embedding(server, fake):
    fake.script("slow-embedder", Behaviour(delay_s=SLOW_S))
    body = {"model": "openai/slow-embedder", "input": "words"}
    leave_after(server, fake, 1, "/v3/compat/embeddings", body, {"x-opper-name": "leaves-embedding"})
    assert_cancelled(server, fake, "leaves-embedding", upstream_requests=1)


def access_statuses(server: ServerProcess, path: str) -> list[int]:
    lines = (json.loads(line) for line in server.stderr_text().splitlines() if line.startswith("{"))
    return [line["status"] for line in lines if line.get("path") == path]


def test_sigterm_cancels_a_long_call_after_the_grace_period_and_keeps_its_span(fake_provider, tmp_path):
    grace_s = 1.0
    server = ServerProcess(fake_provider, tmp_path / "stopping",
                           env={"TASKGATE_SHUTDOWN_SECONDS": str(grace_s)})
    server.start()
    process = server.process
    assert process is not None
    try:
        fake_provider.clear()
        fake_provider.script("endless", Behaviour(delay_s=60))
        body = {"name": "cut-by-shutdown", "input": "x", "model": "openai/endless"}
        with open_request(server, "/v2/call", body) as connection:  # the client stays: the server stops the call
            assert wait_until(lambda: len(fake_provider.requests) == 1)
            asked = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=grace_s + 5)
            took = time.monotonic() - asked
            answer = read_to_end(connection)
    finally:
        server.stop()
        fake_provider.clear()
    assert took < grace_s + 2, f"the server took {took:.1f}s to stop"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head.lower()
    assert json.loads(body)["error"]["code"] == "shutting_down"
    with sqlite3.connect(tmp_path / "stopping" / "taskgate.db") as db:
        rows = db.execute("SELECT status FROM spans WHERE name = 'cut-by-shutdown'").fetchall()
    assert rows == [("cancelled",)]
