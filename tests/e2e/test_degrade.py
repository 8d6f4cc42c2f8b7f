"""Degrade, don't fail: a real `taskgate serve` whose Postgres stops and starts again mid-run (the
test's own throwaway Postgres, never the machine's shared one), and whose journal disk fills up
(a small tmpfs mounted for the test)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fakes.common import Behaviour
from tests.harness import ServerProcess, free_port
from tests.http_client import Reply, get, post, sse_events
from tests.span_lookup import wait_until


@dataclass
class OwnPostgres:
    """A Postgres cluster in a temp dir on a free port, run as the `postgres` user (initdb refuses root)."""

    bin_dir: Path
    data: Path
    port: int
    user: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no initdb under /usr/lib/postgresql/*/bin: cannot start a throwaway Postgres")
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        owner = pwd.getpwnam(user)
    except KeyError:
        pytest.skip("running as root without a `postgres` user to run a throwaway Postgres as")
    root = Path(tempfile.mkdtemp(prefix="taskgate-pg-"))
    os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = OwnPostgres(Path(found[-1]).parent, root / "data", free_port(), user)
    try:
        cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _call(server: ServerProcess, n: int) -> str:
    reply = post(f"{server.url}/v2/call", {"name": "degrade", "input": f"call {n}"}, timeout=30)
    assert reply.status == 200, reply.body
    return str(reply.json()["span_id"])


def _stored(url: str, span_ids: list[str]) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id FROM spans")).scalars().all()
    finally:
        engine.dispose()
    return set(rows) & set(span_ids)


def _wait_for(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.2)


def test_postgres_stopped_mid_run_degrades_and_catches_up(fake_provider, own_postgres: OwnPostgres,
                                                          tmp_path: Path) -> None:
    server = ServerProcess(fake_provider, tmp_path / "srv", env={"TASKGATE_DATABASE_URL": own_postgres.url,
                                                                  "TASKGATE_SPAN_FLUSH_SECONDS": "0.2"})
    server.start()
    try:
        answered = [_call(server, 0)]  # the key and the function are known before the outage
        assert get(f"{server.url}/health", key=None).json() == {"status": "ok"}
        own_postgres.stop()
        answered += [_call(server, n) for n in range(1, 21)]
        _wait_for(lambda: get(f"{server.url}/health", key=None).json()["status"] == "degraded")
        health = get(f"{server.url}/health", key=None)
        assert health.status == 200 and health.json()["store"] == "failing"
        assert health.json()["unstored_spans"] >= 20
        ready = get(f"{server.url}/ready", key=None)
        assert ready.status == 200 and ready.json()["store"] == "failing"  # calls are still taken
        assert ready.json()["journal"]["state"] == "ok"
        for path in ("/v2/traces", "/v2/functions", "/v3/spans/does-not-matter"):  # reads need the store
            refused = get(f"{server.url}{path}")
            assert refused.status == 503, (path, refused.status, refused.text)
            assert refused.json()["error"]["code"] == "store_unavailable"
            assert refused.headers["retry-after"]
        own_postgres.start()
        _wait_for(lambda: _stored(own_postgres.url, answered) == set(answered))
        _wait_for(lambda: get(f"{server.url}/health", key=None).json() == {"status": "ok"})
        assert get(f"{server.url}/ready", key=None).json()["journal"]["unstored_spans"] == 0
    finally:
        server.stop()


@pytest.fixture
def small_journal_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted where the server's journal lives; unmounted afterwards."""
    data_dir = tmp_path / "srv"
    mount_point = data_dir / "journal"
    mount_point.mkdir(parents=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot give the journal a small disk")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the journal (needs root): {mounted.stderr.strip()}")
    try:
        yield data_dir
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the disk is full."""
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as handle:
        while True:
            handle.write(b"\0" * 65536)
    return filler


def test_a_full_journal_disk_refuses_calls_with_503_until_there_is_room(fake_provider,
                                                                        small_journal_disk: Path) -> None:
    server = ServerProcess(fake_provider, small_journal_disk)
    server.start()
    try:
        first = _call(server, 0)
        filler = _fill(small_journal_disk / "journal")
        time.sleep(0.1)  # free space is read at most every 50 ms
        for path in ("/v2/call", "/v3/call"):
            refused = post(f"{server.url}{path}", {"name": "degrade", "input": "no room"})
            assert refused.status == 503, refused.body
            assert refused.headers["retry-after"]
            assert refused.json()["error"]["code"] == "journal_unavailable"
            assert refused.json()["type"] == "ServiceUnavailableError"
        stream = post(f"{server.url}/v2/call/stream", {"name": "degrade", "input": "no room"})
        assert stream.status == 503
        ready = get(f"{server.url}/ready", key=None)
        assert ready.status == 503 and ready.json()["status"] == "not_ready"
        assert ready.json()["journal"]["state"] == "full"
        filler.unlink()
        time.sleep(0.1)
        second = _call(server, 1)
        assert get(f"{server.url}/ready", key=None).status == 200
    finally:
        server.stop()
    stored = _stored(f"sqlite:///{small_journal_disk / 'taskgate.db'}", [first, second])
    assert stored == {first, second}


def test_sigterm_lets_a_stream_in_flight_finish_and_leaves_the_journal_empty(fake_provider, tmp_path: Path) -> None:
    """Within TASKGATE_SHUTDOWN_SECONDS a stream runs to its end; its span is stored, the journal drained."""
    server = ServerProcess(fake_provider, tmp_path / "srv", env={"TASKGATE_SHUTDOWN_SECONDS": "8",
                                                                  "TASKGATE_SPAN_FLUSH_SECONDS": "3600"})
    server.start()
    process = server.process
    assert process is not None
    fake_provider.script("slow-stream", Behaviour(event_delay_s=0.3))
    replies: list[Reply] = []
    body = {"name": "drained", "input": "x", "model": "openai/slow-stream"}
    client = threading.Thread(target=lambda: replies.append(post(f"{server.url}/v2/call/stream", body)))
    try:
        client.start()
        assert wait_until(lambda: any(r.model == "slow-stream" for r in fake_provider.requests))
        time.sleep(0.3)  # the stream has begun answering
        process.send_signal(signal.SIGTERM)
        client.join(15)
        process.wait(15)
    finally:
        server.stop()
        fake_provider.clear()
    events = sse_events(replies[0])
    assert replies[0].status == 200 and '"error"' not in events[-1]
    text = "".join(json.loads(event).get("delta", "") for event in events if event.startswith("{"))
    assert text == fake_provider.default_text("slow-stream")  # every piece arrived
    with sqlite3.connect(tmp_path / "srv" / "taskgate.db") as db:
        assert db.execute("SELECT status FROM spans WHERE name = 'drained'").fetchall() == [("ok",)]
    assert list((tmp_path / "srv" / "journal").glob("slot-*/spans-*")) == []
