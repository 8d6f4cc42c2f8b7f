"""Upstream faults through a real `taskgate serve`: each fault is fallen back from when the chain has
another model, else a typed error; either way the call leaves a span that names what failed.

The adapters' own handling of each fault is tested in tests/unit (test_openai_adapter.py,
test_anthropic_adapter.py); this is the whole path: router, engine, recorder, journal and store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, free_port
from tests.http_client import post, sse_events

TIMEOUT_S = 0.5  # the failing model's own timeout, as a model option
FAULTS = {
    "500": (Behaviour(status=500), 502),
    "429": (Behaviour(status=429, retry_after="0"), 429),
    "503": (Behaviour(status=503), 502),
    "garbage": (Behaviour(raw_body=b'{"choices": [{"message": '), 502),
    "hang": (Behaviour(delay_s=5), 504),
}
CUT = Behaviour(cut_after=0)  # a stream cut before any output: only a stream can be cut


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, FakeProvider]]:
    """A server whose `openai` preset is the fake, and whose `dead` provider refuses connections."""
    fake = FakeProvider()
    fake.start()
    closed_port = free_port()  # bound and released: nothing listens there
    env = {"TASKGATE_PROVIDERS": json.dumps({"dead": {"base_url": f"http://127.0.0.1:{closed_port}/v1",
                                                      "key_env": "DEAD_KEY"}}),
           "DEAD_KEY": "k"}
    server = ServerProcess(fake, tmp_path_factory.mktemp("faults") / "srv", env=env)
    server.start()
    yield server, fake
    server.stop()
    fake.stop()


def _span(server: ServerProcess, name: str) -> dict[str, object]:
    """The stored span of the one call made under function `name`, once its batch is written."""
    with sqlite3.connect(server.data_dir / "taskgate.db") as conn:
        for _ in range(100):
            row = conn.execute("SELECT status, error, models_failed, model_used FROM spans WHERE name = ?",
                               (name,)).fetchone()
            if row is not None:
                return {"status": row[0], "error": row[1], "models_failed": json.loads(row[2] or "[]"),
                        "model_used": row[3]}
            time.sleep(0.05)
    raise AssertionError(f"no span for {name}")


def _failing(fault: str) -> dict[str, object]:
    return {"name": f"openai/fault-{fault}", "options": {"timeout": TIMEOUT_S}}


@pytest.mark.parametrize(("fault", "streaming"), [*((f, s) for f in sorted(FAULTS) for s in (False, True)),
                                                  ("cut", True)])
def test_a_fault_falls_back_to_the_next_model_and_is_recorded(faulty, fault: str, streaming: bool) -> None:
    server, fake = faulty
    fake.script(f"fault-{fault}", FAULTS[fault][0] if fault in FAULTS else CUT)
    name = f"fallback-{fault}-{streaming}"
    path = "/v2/call/stream" if streaming else "/v2/call"
    reply = post(f"{server.url}{path}", {"name": name, "input": "x", "model": [_failing(fault), "openai/gpt-4o-mini"]})
    assert reply.status == 200, reply.body
    if streaming:
        assert sse_events(reply)
    span = _span(server, name)
    assert span["status"] == "ok" and span["model_used"] == "openai/gpt-4o-mini"
    assert any(f"fault-{fault}" in failed for failed in span["models_failed"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_with_nothing_to_fall_back_to_is_a_typed_error_and_an_error_span(faulty, fault: str) -> None:
    server, fake = faulty
    behaviour, status = FAULTS[fault]
    fake.script(f"fault-{fault}", behaviour)
    name = f"alone-{fault}"
    reply = post(f"{server.url}/v2/call", {"name": name, "input": "x", "model": _failing(fault)})
    assert reply.status == status, reply.body
    assert reply.json()["error"]["code"] and reply.json()["type"]
    span = _span(server, name)
    assert span["status"] == "error" and span["error"]


def test_a_refused_connection_falls_back_and_alone_is_a_502_with_an_error_span(faulty) -> None:
    server, _ = faulty
    answered = post(f"{server.url}/v2/call", {"name": "refused-fallback", "input": "x",
                                              "model": ["dead/model", "openai/gpt-4o-mini"]})
    assert answered.status == 200, answered.body
    assert _span(server, "refused-fallback")["model_used"] == "openai/gpt-4o-mini"
    refused = post(f"{server.url}/v2/call", {"name": "refused-alone", "input": "x", "model": "dead/model"})
    assert refused.status == 502, refused.body
    span = _span(server, "refused-alone")
    assert span["status"] == "error" and span["error"]


def test_a_stream_cut_after_output_ends_with_an_error_event_and_an_error_span(faulty) -> None:
    server, fake = faulty
    fake.script("cut-late", Behaviour(cut_after=3))
    reply = post(f"{server.url}/v2/call/stream", {"name": "cut-late", "input": "x", "model": "openai/cut-late"})
    assert reply.status == 200
    assert "error" in sse_events(reply)[-1]
    span = _span(server, "cut-late")
    assert span["status"] == "error" and span["error"]
