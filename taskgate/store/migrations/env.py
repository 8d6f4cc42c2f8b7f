"""Alembic environment. The server passes an open connection (already inside a locked transaction,
see taskgate.store.migrate); the alembic command line gets one from TASKGATE_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from taskgate.config import Settings
from taskgate.store.database import create_engine, normalize_url
from taskgate.store.tables import metadata


def _is_ours(obj: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate must leave the full-text search objects alone (SQLite's FTS5 tables, the Postgres
    GIN index): migration 0001 makes them with raw SQL, and `tables.py` does not describe them."""
    if kind == "table" and name is not None and name.startswith(("examples_fts", "knowledge_vectors_")):
        return False  # the vector index's tables are made at run time, one per dimension
    return not (kind == "index" and name == "ix_examples_search")


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      include_object=_is_ours)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(normalize_url(Settings.from_env().database_url or "sqlite:///taskgate-dev.db"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
