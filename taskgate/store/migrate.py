"""Bringing a database to the newest schema, from code, at start-up.

The migrations ship inside the package, so this works from an installed wheel. The whole upgrade
runs in one transaction that first takes a lock (SQLite `BEGIN IMMEDIATE`, a Postgres advisory
lock): a second process starting at the same moment waits, then finds the schema current and
does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from taskgate.store.database import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x7461736B67617465  # "taskgate" in ASCII


def alembic_config() -> Config:
    config = Config()
    # Config values go through ConfigParser interpolation: escape any % in the install path.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def upgrade_to_head(database: Database) -> None:
    """Blocking: call it from a worker thread (or before the event loop starts)."""

    def _upgrade(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")

    database.transaction(_upgrade, write=True)
