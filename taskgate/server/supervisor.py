"""`taskgate serve --workers N` (N > 1): one parent that prepares, listens and keeps N workers alive.

The parent does the one-time work before any worker starts: it creates the data directory, brings
the store to the newest schema, makes the bootstrap keys' project and the secret key file. It then
binds the listening socket itself and hands it to every worker as an inherited descriptor (rather
than each worker binding its own SO_REUSEPORT socket): all workers accept from one queue, so a
worker that dies takes only the connections it had accepted, where with SO_REUSEPORT the kernel
would have hashed further connections into the dead worker's own queue and reset them; a busy
worker also simply accepts less while an idle one takes the rest, and a replacement starts
serving without binding anything. Each worker is a fresh interpreter (`python -m
taskgate.server.worker`), not a fork: nothing the parent imported or started is copied into it.

The local models (llama.cpp, the embedding model) live in one more child, the local model process
(`taskgate.providers.local.model_process`), which the workers reach over a Unix socket: the
weights are loaded once per machine and the local queue bound holds for the machine.

A worker or model process that exits is started again (after a pause that grows while it keeps
failing at once; a worker that cannot start at all stops the whole server). SIGTERM or SIGINT to
the parent stops the replacing and passes SIGTERM to every worker, which drains its requests for
`shutdown_grace_s` and writes its spans; one still running FLUSH_MARGIN_S after that is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from taskgate.config import Settings

log = logging.getLogger("taskgate.serve")

BACKLOG = 2048
POLL_S = 0.1
FLUSH_MARGIN_S = 10.0  # after the grace period, time a worker may take to write its spans and exit
MODEL_PROCESS_STOP_S = 5.0
QUICK_EXIT_S = 5.0  # a child that exits sooner than this after starting "failed at once"
MAX_QUICK_EXITS = 5  # a worker failing at once this many times in a row stops the server
MAX_RESTART_PAUSE_S = 5.0
SOCKET_WAIT_S = 15.0
MODEL_SOCKET = "local-model.sock"


@dataclass(slots=True)
class _Child:
    """One supervised process slot: its command, its current process and how it has been failing."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float = 0.0
    pass_fds: tuple[int, ...] = field(default_factory=tuple)


def prepare(settings: Settings) -> None:
    """The one-time set-up, done by the parent before any worker starts: data directory, schema,
    the bootstrap keys' project, the secret key file."""
    from taskgate.engine.secret_box import load_secret_key
    from taskgate.server.auth import DEFAULT_PROJECT
    from taskgate.store import open_store
    from taskgate.store.database import private_directory

    async def prepare_store() -> None:
        store = await open_store(settings.effective_database_url)
        try:
            if settings.api_keys:
                await store.ensure_project(DEFAULT_PROJECT)
        finally:
            await store.close()

    private_directory(settings.data_dir)
    asyncio.run(prepare_store())
    load_secret_key(settings.secret_key, settings.data_dir)


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound once here and inherited by every worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, settings: Settings, workers: int, log_level: str) -> None:
        self._settings = settings
        self._workers = workers
        self._log_level = log_level
        self._stopping = False
        self._run_dir = Path(tempfile.mkdtemp(prefix="taskgate-"))  # 0700: only this user reaches the model
        self.model_socket = self._run_dir / MODEL_SOCKET
        self._metrics_dir: Path | None = None  # prometheus-client's multiprocess directory, shared by the workers

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit status (1 when workers could not be kept running)."""
        try:
            prepare(self._settings)
            if self._settings.metrics_enabled:
                from taskgate.telemetry.metrics import shared_metrics_dir

                self._metrics_dir = shared_metrics_dir(self._settings.data_dir, self._settings.prometheus_multiproc_dir)
            sock = listening_socket(self._settings.host, self._settings.port)
        except OSError as exc:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            log.error("taskgate: cannot listen on %s:%d: %s", self._settings.host, self._settings.port, exc)
            return 1
        except BaseException:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            raise
        port = sock.getsockname()[1]
        log.warning("taskgate: %d workers serving on http://%s:%d (parent pid %d)", self._workers,
                    self._settings.host, port, os.getpid())
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        model = _Child("local model process", self._model_command())
        workers = [_Child(f"worker {index}", self._worker_command(sock.fileno(), port, resume=index == 0),
                          pass_fds=(sock.fileno(),)) for index in range(self._workers)]
        status = 1
        try:
            self._start(model)
            if self._model_socket_ready(model):
                for worker in workers:
                    self._start(worker)
                    # Only the first worker, on its first start, resumes unfinished knowledge files.
                    worker.command = [arg for arg in worker.command if arg != "--resume-ingestion"]
                status = self._supervise(model, workers)
            elif self._stopping:
                status = 0  # stopped while starting
        finally:
            sock.close()  # new connections are refused once the workers have closed theirs too
            self._drain(workers)
            self._stop_model(model)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(self._run_dir, ignore_errors=True)
        return status

    # ---- commands

    def _common_args(self) -> list[str]:
        return ["--data-dir", str(self._settings.data_dir), "--log-level", self._log_level]

    def _worker_command(self, fd: int, port: int, *, resume: bool) -> list[str]:
        return [sys.executable, "-m", "taskgate.server.worker", "--fd", str(fd), "--host", self._settings.host,
                "--port", str(port), "--workers", str(self._workers), "--model-socket", str(self.model_socket),
                *self._common_args(), *(["--resume-ingestion"] if resume else [])]

    def _model_command(self) -> list[str]:
        return [sys.executable, "-m", "taskgate.providers.local.model_process", "--socket", str(self.model_socket),
                *self._common_args()]

    # ---- children

    def _start(self, child: _Child) -> None:
        env = dict(os.environ)
        if self._metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self._metrics_dir)  # read before prometheus-client is imported
        child.process = subprocess.Popen(child.command, pass_fds=child.pass_fds, stdin=subprocess.DEVNULL, env=env)
        child.started = time.monotonic()

    def _model_socket_ready(self, model: _Child) -> bool:
        """Wait for the local model process to listen; False (logged) when it did not start."""
        deadline = time.monotonic() + SOCKET_WAIT_S
        while not self.model_socket.exists():
            assert model.process is not None
            if self._stopping:
                return False
            if model.process.poll() is not None or time.monotonic() > deadline:
                log.error("taskgate: the local model process did not start (exit status %s)", model.process.poll())
                return False
            time.sleep(0.02)
        return True

    def _supervise(self, model: _Child, workers: list[_Child]) -> int:
        while not self._stopping:
            for child in (model, *workers):
                if not self._keep_alive(child, give_up=child is not model):
                    return 1
            time.sleep(POLL_S)
        return 0

    def _keep_alive(self, child: _Child, *, give_up: bool) -> bool:
        """Start `child` again if it exited; False when a worker keeps failing at once."""
        assert child.process is not None
        now = time.monotonic()
        if child.restart_at:
            if now >= child.restart_at and not self._stopping:
                child.restart_at = 0.0
                self._start(child)
            return True
        code = child.process.poll()
        if code is None:
            return True
        self._forget_metrics(child.process.pid)
        quick = now - child.started < QUICK_EXIT_S
        child.quick_exits = child.quick_exits + 1 if quick else 0
        if give_up and child.quick_exits >= MAX_QUICK_EXITS:
            log.error("taskgate: %s exited %d times in a row right after starting (status %s); stopping",
                      child.name, child.quick_exits, code)
            return False
        pause = min(0.1 * 2 ** child.quick_exits, MAX_RESTART_PAUSE_S) if quick else 0.0
        log.warning("taskgate: %s (pid %d) exited with status %s; starting a new one", child.name,
                    child.process.pid, code)
        child.restart_at = now + pause if pause else 0.0
        if not pause:
            self._start(child)
        return True

    def _forget_metrics(self, pid: int) -> None:
        """A worker that died without saying so (kill -9): its live gauges leave the sum, as at a clean exit."""
        if self._metrics_dir is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(pid, str(self._metrics_dir))

    def _drain(self, workers: list[_Child]) -> None:
        """SIGTERM to every worker, then wait for them to drain and flush; kill any left after that."""
        running = [w.process for w in workers if w.process is not None and w.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._settings.shutdown_grace_s + FLUSH_MARGIN_S
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("taskgate: worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()

    def _stop_model(self, model: _Child) -> None:
        process = model.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(MODEL_PROCESS_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            log.warning("taskgate: %s received; draining the workers", signal.Signals(signum).name)
        self._stopping = True
