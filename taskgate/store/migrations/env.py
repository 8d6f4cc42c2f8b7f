"""Alembic environment. The server passes an open connection (already inside a locked transaction,
see taskgate.store.migrate); the alembic command line gets one from TASKGATE_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from taskgate.store.database import create_engine, normalize_url
from taskgate.store.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(normalize_url(os.environ.get("TASKGATE_DATABASE_URL", "sqlite:///taskgate-dev.db")))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
