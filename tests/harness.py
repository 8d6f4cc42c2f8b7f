"""Run the real `taskgate serve` as a subprocess, and real SDK clients in their own virtualenvs.

SDK venvs live outside the repository (~/.cache/taskgate-test-venvs) so they survive between
runs; an fcntl lock makes parallel pytest processes build each one only once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from tests.fakes.provider import FakeProvider

TESTS_DIR = Path(__file__).resolve().parent
SDK_SCRIPTS = TESTS_DIR / "sdk_scripts"
VENV_ROOT = Path.home() / ".cache" / "taskgate-test-venvs"
API_KEY = "test-key"

# name -> (pip requirements, module whose import proves the venv works)
SDK_VENVS: dict[str, tuple[tuple[str, ...], str]] = {
    "opperai-1.7.2": (("opperai==1.7.2", "pydantic"), "opperai"),
    "opperai-2.1.1": (("opperai==2.1.1", "pydantic"), "opperai"),
    "openai": (("openai", "pydantic"), "openai"),
    "anthropic": (("anthropic",), "anthropic"),
}

# Variables that must not leak from the developer's shell into a server under test.
_SCRUBBED_SUFFIXES = ("_API_KEY", "_BASE_URL", "_API_KEYS")
_SCRUBBED_PREFIXES = ("TASKGATE_", "OPPER_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "OTEL_", "PROMETHEUS_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without provider keys or Taskgate settings, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.endswith(_SCRUBBED_SUFFIXES) and not k.startswith(_SCRUBBED_PREFIXES)
    }
    env.update(extra or {})
    return env


def taskgate_command() -> list[str]:
    """The console script beside the test interpreter; the module itself when the package is not installed."""
    for candidate in (Path(sys.executable).with_name("taskgate"), TESTS_DIR.parent / ".venv" / "bin" / "taskgate"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-c", "from taskgate.cli import main; main()"]


def server_env(fake: FakeProvider, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment with our key, both provider presets pointing at `fake`, and `extra`."""
    return clean_env({
        "TASKGATE_API_KEYS": API_KEY,
        "OPENAI_API_KEY": "sk-fake",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "ANTHROPIC_API_KEY": "ak-fake",
        "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        "TASKGATE_DEFAULT_MODEL": "openai/gpt-4o-mini",
        **(extra or {}),
    })


class ServerProcess:
    """`taskgate serve` on a free loopback port, wired to a FakeProvider."""

    def __init__(self, fake: FakeProvider, data_dir: Path, env: Mapping[str, str] | None = None,
                 args: tuple[str, ...] = (), startup_timeout: float = 30.0):
        self.fake = fake
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.api_key = API_KEY
        self.args = args
        self.startup_timeout = startup_timeout
        self.env = server_env(fake, env)
        self.process: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [*taskgate_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), *self.args]

    def sdk_env(self) -> dict[str, str]:
        """What an SDK script needs to reach this server, under each client's own variable names."""
        return {
            "TASKGATE_URL": self.url,
            "TASKGATE_API_KEY": self.api_key,
            "OPPER_API_KEY": self.api_key,
            "OPPER_HTTP_BEARER": self.api_key,
            "OPPER_BASE_URL": self.url,
            "OPENAI_API_KEY": self.api_key,
            "OPENAI_BASE_URL": f"{self.url}/v3/compat",
        }

    def start(self) -> None:
        """Launch and wait for /health; a server that dies early raises with its stderr."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Files, not pipes: a chatty server must never block on a full pipe nobody reads.
        self._stdout = open(self.data_dir / "server.stdout", "w+b")  # noqa: SIM115
        self._stderr = open(self.data_dir / "server.stderr", "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(self.command(), env=self.env, stdout=self._stdout, stderr=self._stderr,
                                        stdin=subprocess.DEVNULL, cwd=TESTS_DIR.parent)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self._close_logs()
                raise RuntimeError(f"taskgate serve exited with {code} before it was healthy:\n{self.stderr_text()}")
            if self._healthy():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"taskgate serve was not healthy after {self.startup_timeout}s:\n{self.stderr_text()}"
                )
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait for a graceful exit, then kill. Returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_logs()
        return process.returncode

    def _close_logs(self) -> None:
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()

    def stderr_text(self) -> str:
        path = self.data_dir / "server.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# ----- SDK virtualenvs -----

_ready: dict[str, Path] = {}


def venv_dir(name: str) -> Path:
    """Keyed by the requirements and the interpreter, so changing either builds a fresh venv."""
    requirements, _ = SDK_VENVS[name]
    tag = f"{sys.version_info.major}.{sys.version_info.minor}|{'|'.join(requirements)}"
    return VENV_ROOT / f"{name}-{hashlib.sha256(tag.encode()).hexdigest()[:10]}"


def sdk_python(name: str) -> Path:
    """The interpreter of the named SDK venv, creating it on first use (under a file lock)."""
    if name in _ready:
        return _ready[name]
    if name not in SDK_VENVS:
        raise KeyError(f"unknown SDK venv {name!r}; known: {', '.join(SDK_VENVS)}")
    requirements, module = SDK_VENVS[name]
    target = venv_dir(name)
    python = target / "bin" / "python"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with open(VENV_ROOT / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _imports(python, module):
            shutil.rmtree(target, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(target)], 300)
            _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *requirements], 900)
            if not _imports(python, module):
                raise RuntimeError(f"SDK venv {name} was built but `import {module}` still fails")
    _ready[name] = python
    return python


def _imports(python: Path, module: str) -> bool:
    if not python.exists():
        return False
    result = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, env=clean_env(),
                            timeout=120)
    return result.returncode == 0


def _run(command: list[str], timeout: float) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=clean_env())
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def run_sdk_script(name: str, script: str | Path, *args: str, env: Mapping[str, str] | None = None,
                   timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a Python file inside the named SDK venv; a bare file name is looked up in tests/sdk_scripts."""
    path = Path(script)
    if not path.is_absolute() and not path.exists():
        path = SDK_SCRIPTS / path
    return subprocess.run([str(sdk_python(name)), str(path), *args], capture_output=True, text=True,
                          timeout=timeout, env=clean_env(env), cwd=str(path.parent))
