"""Persistence: `open_store(url)` gives the Store for a SQLite or Postgres URL, migrated to the
newest schema."""

from __future__ import annotations

import asyncio

from taskgate.store.base import Store
from taskgate.store.database import Database, normalize_url
from taskgate.store.sql import SqlStore

__all__ = ["SqlStore", "Store", "open_store"]


async def open_store(url: str, *, migrate: bool = True) -> Store:
    """Connect, create the SQLite file's directory if needed, migrate to head (unless `migrate` is
    False: a worker whose supervisor did it, which then never imports alembic), and return the store.

    Raises ValueError for a URL that is neither SQLite nor Postgres."""
    database = Database(normalize_url(url))
    if migrate:
        from taskgate.store.migrate import upgrade_to_head

        try:
            await asyncio.to_thread(upgrade_to_head, database)
        except BaseException:
            database.close()
            raise
    return SqlStore(database)
