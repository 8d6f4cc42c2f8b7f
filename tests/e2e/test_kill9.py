"""No accepted call is lost: 50 clients call a real `taskgate serve`, which is killed with SIGKILL
mid-run and started again on the same data directory. Every span id a client was answered 200 for
(a call's body, or a stream's first event) must be in the store exactly once.

Spans are batched for 5 s here, so without the journal nearly every answered call of the last
5 s would be lost: the test fails if the journal does not hold them.
"""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.harness import API_KEY, ServerProcess

CLIENTS = 50
STREAMING_CLIENTS = 10  # of the 50
RUN_BEFORE_KILL_S = 2.0
_SPAN_ID = re.compile(rb'"span_id"\s*:\s*"([^"]+)"')


class Client(threading.Thread):
    """Calls until the server is gone, keeping the span ids it was answered 200 for."""

    def __init__(self, port: int, number: int, streaming: bool) -> None:
        super().__init__(daemon=True)
        self.port, self.number, self.streaming = port, number, streaming
        self.accepted: list[str] = []
        self.failed = 0

    def run(self) -> None:
        path = "/v2/call/stream" if self.streaming else "/v2/call"
        for n in range(100_000):
            body = json.dumps({"name": "kill9", "input": f"client {self.number} call {n}"}).encode()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {API_KEY}",
                                                               "Content-Type": "application/json"})
                resp = conn.getresponse()
                if resp.status != 200:
                    self.failed += 1
                    continue
                span_id = self._span_id(resp)
                if span_id is not None:
                    self.accepted.append(span_id)
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            finally:
                conn.close()

    def _span_id(self, resp: http.client.HTTPResponse) -> str | None:
        """The span id of a 200: from the body, or from a stream's first event that has it (the rest
        of a stream may be cut by the kill: it was answered all the same)."""
        seen = b""
        while chunk := resp.read1(65536) if self.streaming else resp.read():
            seen += chunk
            if self.streaming and (found := _SPAN_ID.search(seen)):
                resp.read()
                return found.group(1).decode()
        found = _SPAN_ID.search(seen)
        return found.group(1).decode() if found else None


def _stored_counts(database_url: str, span_ids: set[str]) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, count(*) FROM spans GROUP BY id")).all()
    finally:
        engine.dispose()
    return {span_id: count for span_id, count in rows if span_id in span_ids}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_mid_run_loses_no_answered_call(fake_provider, tmp_path: Path, request: pytest.FixtureRequest,
                                                backend: str) -> None:
    data_dir = tmp_path / "srv"
    env = {"TASKGATE_SPAN_FLUSH_SECONDS": "5"}
    if backend == "postgres":
        env["TASKGATE_DATABASE_URL"] = str(request.getfixturevalue("postgres_url"))
    database_url = env.get("TASKGATE_DATABASE_URL", f"sqlite:///{data_dir / 'taskgate.db'}")
    server = ServerProcess(fake_provider, data_dir, env=env)
    server.start()
    clients = [Client(server.port, n, streaming=n < STREAMING_CLIENTS) for n in range(CLIENTS)]
    try:
        for client in clients:
            client.start()
        time.sleep(RUN_BEFORE_KILL_S)
        assert server.process is not None
        server.process.kill()  # SIGKILL: no shutdown, no flush
        server.process.wait()
        for client in clients:
            client.join(30)
    finally:
        server.stop()
    accepted = [span_id for client in clients for span_id in client.accepted]
    assert len(accepted) >= CLIENTS, "the clients were hardly answered before the kill: nothing was tested"
    assert len(set(accepted)) == len(accepted)
    before_restart = _stored_counts(database_url, set(accepted))

    restarted = ServerProcess(fake_provider, data_dir, env=env)
    restarted.start()  # replays the journal
    try:
        deadline = time.monotonic() + 20
        while len(_stored_counts(database_url, set(accepted))) < len(accepted) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        restarted.stop()
    counts = _stored_counts(database_url, set(accepted))
    lost = [span_id for span_id in accepted if span_id not in counts]
    print(f"\nkill -9 ({backend}): accepted {len(accepted)}, in the store before the restart "
          f"{len(before_restart)}, lost {len(lost)}")
    assert len(before_restart) < len(accepted), "the store already had every span: the journal was not needed"
    assert lost == []
    assert set(counts.values()) == {1}
    if backend == "sqlite":
        with sqlite3.connect(data_dir / "taskgate.db") as conn:
            (total,) = conn.execute("SELECT count(*) FROM spans WHERE name = 'kill9'").fetchone()
        assert total >= len(accepted)
