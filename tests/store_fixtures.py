"""Store fixtures: the same tests run on a SQLite file and, when one is reachable, on a real Postgres
at 127.0.0.1:5432 (user postgres, trust auth) in a database made for this test session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from taskgate.store import SqlStore, open_store

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


class PostgresDatabases:
    """Makes uniquely named databases and drops them all at the end of the session."""

    def __init__(self) -> None:
        import psycopg

        self._psycopg = psycopg
        self._names: list[str] = []
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("SELECT 1")

    def create(self) -> str:
        name = f"taskgate_test_{uuid.uuid4().hex[:12]}"
        with self._psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._names.append(name)
        return PG_URL.format(name=name)

    def drop_all(self) -> None:
        with self._psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self._names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases | str]:
    """The database maker, or the reason Postgres cannot be used (tests then skip with it)."""
    try:
        databases = PostgresDatabases()
    except Exception as exc:  # not installed, not running, or refusing us: all mean "skip"
        yield f"postgres not reachable at 127.0.0.1:5432: {exc}"
        return
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresDatabases | str) -> str:
    """One database shared by the session's tests; they keep apart by using fresh projects."""
    if isinstance(postgres, str):
        pytest.skip(postgres)
    return postgres.create()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes URLs of new, empty databases of the parametrised backend."""
    if request.param == "sqlite":
        counter = iter(range(1_000_000))
        return lambda: f"sqlite:///{tmp_path / 'db' / str(next(counter))}.db"
    postgres = request.getfixturevalue("postgres")
    if isinstance(postgres, str):
        pytest.skip(postgres)
    return postgres.create


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'taskgate.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await open_store(store_url)
    assert isinstance(opened, SqlStore)
    yield opened
    await opened.close()


@pytest.fixture
async def project(store: SqlStore) -> str:
    """A project no other test uses, so tests sharing the Postgres database cannot see each other."""
    return await store.ensure_project(f"project-{uuid.uuid4().hex}")
