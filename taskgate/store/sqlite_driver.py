"""The DB-API module the store's SQLite connections use, and whether they can search vectors with sqlite-vec.

CPython's own `sqlite3` is often built without extension loading (this machine's is), so sqlite-vec's
loadable `vec0` cannot be used through it. `sqlean.py` is the same module built against a recent SQLite
with `enable_load_extension`; with it and the `sqlite-vec` package importable and the extension loading
in a probe connection, the store uses both. Otherwise it keeps the standard module and the knowledge
store's exact search over vectors in memory, and says so once in the log.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sqlite3
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger("taskgate.store")


@dataclass(frozen=True, slots=True)
class SqliteDriver:
    module: ModuleType  # the DB-API module: sqlean with sqlite-vec, else the standard sqlite3
    vec_version: str | None  # sqlite-vec's version when it loads, else None
    reason: str | None = None  # why it does not (logged once)

    def load_vector_extension(self, dbapi_connection: Any) -> None:
        """Load sqlite-vec into a new connection, leaving extension loading switched off after it, so no
        SQL the store runs can load anything else."""
        if self.vec_version is None:
            return
        dbapi_connection.enable_load_extension(True)
        try:
            dbapi_connection.load_extension(vec0_path())
        finally:
            dbapi_connection.enable_load_extension(False)


def vec0_path() -> str:
    """sqlite-vec's loadable extension, where `sqlite_vec.loadable_path()` says it is, found without
    importing the package: its `__init__` imports numpy (19 MB in every worker) for a helper not used here."""
    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the sqlite-vec package is not installed")
    return os.path.normpath(os.path.join(next(iter(spec.submodule_search_locations)), "vec0"))


@functools.cache
def sqlite_driver() -> SqliteDriver:
    """Probed once per process: the first SQLite store opened decides, and a failure is logged once."""
    try:
        import sqlean

        probe = sqlean.connect(":memory:")
        try:
            probe.enable_load_extension(True)
            probe.load_extension(vec0_path())
            probe.enable_load_extension(False)
            version = str(probe.execute("SELECT vec_version()").fetchone()[0])
        finally:
            probe.close()
    except Exception as exc:  # not installed, no wheel for this platform, or the library will not load
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("sqlite-vec is not available (%s): knowledge bases on SQLite use exact search in memory", reason)
        return SqliteDriver(module=sqlite3, vec_version=None, reason=reason)
    return SqliteDriver(module=sqlean, vec_version=version)


def exact_driver() -> SqliteDriver:
    """The standard module without the extension: the fallback, chosen on purpose (benchmarks, tests)."""
    return SqliteDriver(module=sqlite3, vec_version=None, reason="vector extension switched off")
