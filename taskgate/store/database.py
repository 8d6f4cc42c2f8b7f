"""The SQLAlchemy engine and the thread pools that run its blocking calls off the event loop.

SQLite gets WAL (readers never wait for the writer), a busy timeout, foreign keys, and
`BEGIN IMMEDIATE` for write transactions: a deferred transaction that reads and then writes can
fail at once with "database is locked" when another writer got in between, while an immediate one
waits its turn under the busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from taskgate.store.codec import pg_json_dumps
from taskgate.store.sqlite_driver import SqliteDriver, exact_driver, sqlite_driver

T = TypeVar("T")

WORKERS = 4
BACKGROUND_NICE = 10  # added to the nice value of the thread that writes span batches
SQLITE_BUSY_TIMEOUT_MS = 10_000
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_WRITE = "taskgate_write"
PGVECTOR_MIN_VERSION = (0, 8)  # iterative HNSW scans, so filtering by base does not cut a search short
log = logging.getLogger("taskgate.store")


def normalize_url(raw: str) -> URL:
    """Accept `postgres://` and `postgresql://` (psycopg 3 is the driver we ship) and SQLite URLs."""
    try:
        url = make_url(raw)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"invalid database URL {raw!r}: {exc}") from exc
    if url.drivername in ("postgres", "postgresql"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        return url
    raise ValueError(f"unsupported database URL scheme {url.drivername!r}: use sqlite:/// or postgresql://")


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: URL, driver: SqliteDriver | None = None) -> Engine:
    """`driver`: the SQLite module and whether it loads sqlite-vec (the process's probed one by default)."""
    # SQL parameters are user data (inputs, outputs, names): an error's message carries them only
    # when the operator asked for debug logging.
    hide = not logging.getLogger("taskgate").isEnabledFor(logging.DEBUG)
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_size=WORKERS, max_overflow=0, pool_pre_ping=True, hide_parameters=hide,
                                json_serializer=pg_json_dumps, json_deserializer=orjson.loads)
    driver = driver or sqlite_driver()
    if is_memory_sqlite(url):
        # One shared connection, or every pooled connection would see its own empty database.
        engine = sa.create_engine(url, module=driver.module, poolclass=StaticPool, hide_parameters=hide,
                                  connect_args={"check_same_thread": False})
    else:
        assert url.database is not None
        prepare_private_file(Path(url.database).expanduser())
        engine = sa.create_engine(url, module=driver.module, pool_size=WORKERS, max_overflow=0,
                                  hide_parameters=hide, connect_args={"check_same_thread": False})
    _configure_sqlite(engine, driver, wal=not is_memory_sqlite(url))
    return engine


def private_directory(path: Path) -> None:
    """Create `path` (and its parents) readable by the owner only; an existing one is narrowed too,
    since it holds the store, its keys' hashes and every recorded input and output."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)


def prepare_private_file(database: Path) -> None:
    """Make the SQLite file exist with mode 0600 before SQLite opens it.

    SQLite creates a new file with the process umask (usually 0644: world-readable) and gives its
    `-wal` and `-shm` files the main file's mode, so owning the main file's mode covers all three.
    The directory is made private only when it is created here: a store pointed into an existing
    shared directory must not change that directory's mode.
    """
    if not database.parent.exists():
        private_directory(database.parent)
    fd = os.open(database, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE)
    os.close(fd)
    if stat.S_IMODE(database.stat().st_mode) != PRIVATE_FILE_MODE:
        database.chmod(PRIVATE_FILE_MODE)
    for suffix in ("-wal", "-shm"):
        sidecar = database.with_name(database.name + suffix)
        if sidecar.exists() and stat.S_IMODE(sidecar.stat().st_mode) != PRIVATE_FILE_MODE:
            sidecar.chmod(PRIVATE_FILE_MODE)


def _configure_sqlite(engine: Engine, driver: SqliteDriver, wal: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own transactions instead of the driver's implicit ones.
        dbapi_connection.isolation_level = None
        driver.load_vector_extension(dbapi_connection)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            _enable_wal(cursor, driver.module.OperationalError)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def _enable_wal(cursor: Any, locked_error: type[Exception]) -> None:
    """Switch the file to WAL, waiting for a connection that holds it.

    Turning a new file to WAL needs it to itself, and SQLite answers "database is locked" at once
    rather than waiting out the busy timeout: two processes opening the same new store (a server
    and `taskgate keys create`, or two replicas) would otherwise fail at random.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except locked_error as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def lower_thread_priority() -> None:
    """Make the calling thread give way to request handling when both want the core.

    On Linux every thread has its own nice value. Span batches are written by one such thread: at
    equal priority a batch of writes keeps the event loop waiting for the core (`bench.span_writes`
    measures the event loop's wake-up time during writes). Elsewhere the call would renice the
    whole process, so it is skipped; so is a system that refuses it.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICE)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class Database:
    """An engine plus small dedicated thread pools; `read`/`write` run one transaction off the loop.

    Writes that nobody waits for (span batches) go to a single low-priority thread of their own.
    """

    def __init__(self, url: URL, *, vector_extension: bool = True) -> None:
        """`vector_extension=False` keeps knowledge search exact even where sqlite-vec or pgvector could
        be used: the baseline the benchmarks and tests compare the extension with."""
        self.url = url
        self._vector_extension_wanted = vector_extension
        driver = sqlite_driver() if vector_extension else exact_driver()
        self.engine = create_engine(url, driver)
        self.dialect = self.engine.dialect.name
        # "sqlite-vec", "pgvector" or None (exact search): Postgres is asked after migrating, which may
        # have created the extension (`detect_pgvector`)
        self.vector_extension: str | None = "sqlite-vec" if self.dialect == "sqlite" and driver.vec_version else None
        memory = is_memory_sqlite(url)
        self._executor = ThreadPoolExecutor(max_workers=1 if memory else WORKERS, thread_name_prefix="taskgate-db")
        # An in-memory database has one connection, which must not be used by two threads at once.
        self._background = self._executor if memory else ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="taskgate-db-background", initializer=lower_thread_priority)

    def detect_pgvector(self) -> None:
        """Blocking, after migrating: use pgvector when the extension is created in this database."""
        if self.dialect != "postgresql" or not self._vector_extension_wanted:
            return
        with self.engine.connect() as conn:
            found = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).first()
        version = str(found[0]) if found is not None else None
        usable = version is not None and _version_tuple(version) >= PGVECTOR_MIN_VERSION
        self.vector_extension = "pgvector" if usable else None
        if not usable:
            log.warning("pgvector %s in this database: knowledge bases use exact search in memory",
                        f"is {version}, older than 0.8 (no iterative index scans)" if version else "is not installed")

    def transaction(self, fn: Callable[[Connection], T], write: bool) -> T:
        """Run `fn` in one transaction, on the calling thread."""
        with self.engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE: True})
            with conn.begin():
                return fn(conn)

    def read_in_background(self, fn: Callable[[Connection], object]) -> None:
        """Run `fn` in a read transaction on the background thread, from any thread, nobody waiting for it:
        warming a cache. Its failure (the store closing under it) is logged, never raised."""
        def run() -> None:
            try:
                self.transaction(fn, write=False)
            except Exception:
                log.debug("a background read failed", exc_info=True)

        with contextlib.suppress(RuntimeError):  # the pool is shut down: the store is closing
            self._background.submit(run)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.transaction, fn, False)

    async def write(self, fn: Callable[[Connection], T], *, background: bool = False) -> T:
        """`background`: on the low-priority thread, for writes that no request waits for."""
        executor = self._background if background else self._executor
        return await asyncio.get_running_loop().run_in_executor(executor, self.transaction, fn, True)

    def close(self) -> None:
        self._background.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self.engine.dispose()


def upsert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Iterable[str]) -> None:
    """Insert `rows`, replacing every non-key column of rows whose `keys` already exist."""
    if not rows:
        return
    key_names = list(keys)
    insert = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    changed = {name: insert.excluded[name] for name in rows[0] if name not in key_names}
    conn.execute(insert.on_conflict_do_update(index_elements=key_names, set_=changed), list(rows))
