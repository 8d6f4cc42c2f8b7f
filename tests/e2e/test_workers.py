"""`taskgate serve --workers N`: N processes on one port, one store, one local model process.

Which worker answers is made certain by stopping the other one (SIGSTOP): a stopped process cannot
accept, so every new connection goes to the one left running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.test_v2_functions import v2
from tests.e2e.test_v2_knowledge import make_base
from tests.e2e.test_v2_knowledge_files import settled
from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, clean_env, taskgate_command
from tests.http_client import Reply, get, post, request, sse_events
from tests.span_lookup import wait_until

WORKER_MODULE = "taskgate.server.worker"
MODEL_MODULE = "taskgate.providers.local.model_process"


def children(parent: int, module: str) -> list[int]:
    """Pids of `parent`'s children running `python -m module`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and module.encode() in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def workers_of(server: ServerProcess) -> list[int]:
    assert server.process is not None
    return children(server.process.pid, WORKER_MODULE)


@contextmanager
def only(pid: int, others: list[int]) -> Iterator[None]:
    """Every new connection is answered by `pid`: the other workers are stopped meanwhile."""
    stopped = [other for other in others if other != pid]
    for other in stopped:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in stopped:
            os.kill(other, signal.SIGCONT)


def start_workers(fake_provider, data_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    server = ServerProcess(fake_provider, data_dir, env=env, args=("--workers", "2"))
    server.start()
    assert wait_until(lambda: len(workers_of(server)) == 2)
    return server


def calls_on_each_worker(server: ServerProcess, per_worker: int) -> dict[int, list[str]]:
    """`per_worker` calls answered by each worker in turn: worker pid -> span ids."""
    pids = workers_of(server)
    spans: dict[int, list[str]] = {}
    for pid in pids:
        with only(pid, pids):
            spans[pid] = [post(f"{server.url}/v2/call", {"name": "spread", "input": f"{pid}-{n}"}).json()["span_id"]
                          for n in range(per_worker)]
    return spans


def assert_all_spans_stored(server: ServerProcess, spans: dict[int, list[str]]) -> None:
    for pid, ids in spans.items():
        for span_id in ids:
            reply = get(f"{server.url}/v3/spans/{span_id}")
            assert reply.status == 200, (pid, span_id, reply.body[:200])
            assert reply.json()["data"]["name"] == "spread"


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_two_workers_serve_and_store_every_span(fake_provider, tmp_path, store, request):
    """On a new store: the supervisor migrates it before the workers (which never migrate) start."""
    env = {}
    if store == "postgres":
        postgres = request.getfixturevalue("postgres")
        if isinstance(postgres, str):
            pytest.skip(postgres)
        env["TASKGATE_DATABASE_URL"] = postgres.create()
    server = start_workers(fake_provider, tmp_path / "srv", env)
    try:
        spans = calls_on_each_worker(server, per_worker=5)
        assert len(spans) == 2 and all(len(ids) == 5 for ids in spans.values())
        assert_all_spans_stored(server, spans)
        # concurrent writers on one store (SQLite: WAL, busy timeout, immediate write transactions):
        # every call names a new function, so each one writes it on the request path, in both workers
        results: list[int] = []

        def client(thread: int) -> None:
            for n in range(10):
                results.append(post(f"{server.url}/v2/call", {"name": f"busy-{thread}-{n}", "input": "x"}).status)

        threads = [threading.Thread(target=client, args=(thread,)) for thread in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 80
    finally:
        assert server.stop(timeout=30) == 0
    assert not workers_of(server)


def test_a_killed_worker_is_replaced(fake_provider, tmp_path):
    server = start_workers(fake_provider, tmp_path / "srv")
    try:
        first, second = workers_of(server)
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: len(workers_of(server)) == 2 and first not in workers_of(server))
        pids = workers_of(server)
        assert second in pids
        replacement = next(pid for pid in pids if pid != second)

        def answered() -> bool:  # the new worker is up once it answers on its own
            with only(replacement, pids):
                try:
                    return get(f"{server.url}/health", key=None, timeout=1).status == 200
                except OSError:
                    return False

        assert wait_until(answered, timeout=20)
        spans = calls_on_each_worker(server, per_worker=2)
        assert set(spans) == {second, replacement}
        assert_all_spans_stored(server, spans)
    finally:
        assert server.stop(timeout=30) == 0


def upstream_reached(fake_provider: FakeProvider, count: int) -> Callable[[], bool]:
    return lambda: len(fake_provider.requests) >= count


def test_sigterm_drains_every_worker(fake_provider, tmp_path):
    server = start_workers(fake_provider, tmp_path / "srv", {"TASKGATE_SHUTDOWN_GRACE_SECONDS": "10"})
    pids = workers_of(server)
    replies: dict[int, Reply] = {}
    try:
        fake_provider.clear()
        for _ in pids:
            fake_provider.script("gpt-4o-mini", Behaviour(text="one two three four", event_delay_s=0.4))

        def stream(pid: int) -> None:
            replies[pid] = post(f"{server.url}/v2/call/stream", {"name": "drain", "input": str(pid)}, timeout=30)

        threads = []
        for pid in pids:  # one stream held by each worker
            with only(pid, pids):
                thread = threading.Thread(target=stream, args=(pid,))
                thread.start()
                assert wait_until(upstream_reached(fake_provider, len(threads) + 1))
            threads.append(thread)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        assert server.process.wait(30) == 0
    finally:
        server.stop()
        fake_provider.clear()
    for pid in pids:
        reply = replies[pid]
        assert reply.status == 200
        deltas = [json.loads(event).get("delta", "") for event in sse_events(reply)[1:]]
        assert "".join(deltas) == "one two three four"  # the whole stream, though SIGTERM came mid-way
        assert not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("value", ["0", "-1", "100000", "99999999999999999999999", "many", "2.5", " "])
def test_bad_worker_counts_exit_2_with_a_message(tmp_path, value):
    done = subprocess.run([*taskgate_command(), "serve", "--data-dir", str(tmp_path), "--workers", value],
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--workers must be a whole number from 1 to" in done.stderr and "'auto'" in done.stderr
    assert not (tmp_path / "taskgate.db").exists()  # refused before anything was made


def test_a_taken_port_is_a_clear_failure(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*taskgate_command(), "serve", "--data-dir", str(tmp_path), "--port", str(port),
                               "--workers", "2"], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_a_file_url_signed_by_one_worker_is_honoured_by_the_other(fake_provider, tmp_path):
    """Both workers sign with keys derived from the one secret key file the supervisor made."""
    server = start_workers(fake_provider, tmp_path / "srv")
    try:
        first, second = workers_of(server)
        with only(first, [first, second]):
            base_id = make_base(server)["id"]
            grant = get(v2(server, f"/knowledge/{base_id}/upload_url?filename=owls.txt")).json()
        with only(second, [first, second]):
            assert request("PUT", grant["url"], key=None, raw=b"Owls turn their heads far around.",
                           headers={"Content-Type": "text/plain"}).status == 204
            forged = request("PUT", grant["url"].replace("token=", "token=x"), key=None, raw=b"evil")
            assert forged.status == 401
            registered = post(v2(server, f"/knowledge/{base_id}/register_file"),
                              {"filename": "owls.txt", "file_id": grant["id"], "content_type": "text/plain"})
            assert registered.status == 201, registered.body
        assert settled(server, base_id, grant["id"])["status"] == "completed"
    finally:
        assert server.stop(timeout=30) == 0
