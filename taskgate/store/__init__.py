"""Persistence: `open_store(url)` gives the Store for a SQLite or Postgres URL, migrated to the
newest schema."""

from __future__ import annotations

import asyncio
import logging

from taskgate.store.base import Store
from taskgate.store.database import Database, normalize_url
from taskgate.store.sql import SqlStore

__all__ = ["SqlStore", "Store", "open_store"]

log = logging.getLogger("taskgate.store")


async def open_store(url: str, *, migrate: bool = True, vector_extension: bool = True) -> Store:
    """Connect, create the SQLite file's directory if needed, migrate to head (unless `migrate` is
    False: a worker whose supervisor did it, which then never imports alembic), and return the store.
    `vector_extension=False`: exact knowledge search even where sqlite-vec or pgvector is there.

    Raises ValueError for a URL that is neither SQLite nor Postgres."""
    database = Database(normalize_url(url), vector_extension=vector_extension)
    try:
        if migrate:
            from taskgate.store.migrate import upgrade_to_head

            await asyncio.to_thread(upgrade_to_head, database)
        await asyncio.to_thread(database.detect_pgvector)
        log.info("knowledge vector search: %s", database.vector_extension or "exact, in memory")
    except BaseException:
        database.close()
        raise
    return SqlStore(database)
