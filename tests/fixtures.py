"""Shared pytest fixtures: the fake upstream, a running `taskgate serve`, SDK venvs.

Imported into conftest.py by the lead; tests use them by name.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, run_sdk_script
from tests.store_fixtures import PostgresDatabases

__all__ = ["SdkVenvs", "any_server", "fake", "fake_provider", "pg_server", "sdk_venv", "server"]


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    """One fake upstream for the whole session; use `fake` in tests for a clean slate."""
    provider = FakeProvider()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def fake(fake_provider: FakeProvider) -> Iterator[FakeProvider]:
    """The session's fake with no recorded requests, scripts or disconnects left by earlier tests."""
    fake_provider.clear()
    yield fake_provider
    fake_provider.clear()


@pytest.fixture(scope="session")
def server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`taskgate serve` for the session, with both provider presets pointing at the fake."""
    process = ServerProcess(fake_provider, tmp_path_factory.mktemp("taskgate-server"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def pg_server(fake_provider: FakeProvider, postgres: PostgresDatabases | str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`taskgate serve` for the session on a Postgres database of its own; skips where Postgres is absent."""
    if isinstance(postgres, str):
        pytest.skip(postgres)
    url = postgres.create()
    # A short flush interval: on a shared store, a span id not found yet is looked for again for up to
    # that long (another replica may hold it), which every 404 test would otherwise wait out.
    process = ServerProcess(fake_provider, tmp_path_factory.mktemp("taskgate-pg-server"),
                            env={"TASKGATE_DATABASE_URL": url, "TASKGATE_SPAN_FLUSH_SECONDS": "0.2"})
    process.start()
    yield process
    process.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def any_server(request: pytest.FixtureRequest) -> ServerProcess:
    """The session's server on SQLite, then the one on Postgres: a test using it runs on both stores."""
    return request.getfixturevalue("server" if request.param == "sqlite" else "pg_server")  # type: ignore[no-any-return]


class SdkVenvs:
    """Runs scripts under tests/sdk_scripts inside the named SDK venv, aimed at a server."""

    def run(self, name: str, script: str | Path, *args: str, server: ServerProcess | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """With `server`, its URL and key are in the environment under every SDK's variable names."""
        merged = {**(server.sdk_env() if server else {}), **(env or {})}
        return run_sdk_script(name, script, *args, env=merged, timeout=timeout)


@pytest.fixture(scope="session")
def sdk_venv() -> SdkVenvs:
    return SdkVenvs()
