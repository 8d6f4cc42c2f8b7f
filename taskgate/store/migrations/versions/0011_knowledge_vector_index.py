"""A vector index beside knowledge chunks (issue 18): sqlite-vec on SQLite, pgvector on Postgres.

The index's tables hold one row per chunk and are made at run time, one per vector width
(`knowledge_vectors_<dims>`, see taskgate.store.knowledge_vectors), since a width is known only when a
model's first vector arrives. This revision adds what keeps them honest: `knowledge_bases.vector_version`,
the base's `version` that its index rows match. A process without the extension still writes chunks
(and bumps `version`) but not index rows; a search then sees the index is behind and ranks exactly,
and the next write through the extension rebuilds the base's rows.

On Postgres it also creates the `vector` extension when the server offers it (`pg_available_extensions`)
and the role may create it; otherwise knowledge search stays exact, as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

log = logging.getLogger("taskgate.store")


def upgrade() -> None:
    op.add_column("knowledge_bases", sa.Column("vector_version", sa.Integer, nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    offered = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    if offered is None:
        return
    savepoint = bind.begin_nested()  # a role that may not create it must not undo the whole upgrade
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
        savepoint.commit()
    except DBAPIError as exc:
        savepoint.rollback()
        log.warning("pgvector is offered but could not be created (%s): knowledge search stays exact", exc.orig)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        names = bind.execute(sa.text("SELECT tablename FROM pg_tables WHERE tablename ~ '^knowledge_vectors_[0-9]+$'"))
    else:
        names = bind.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name GLOB 'knowledge_vectors_[0-9]*' AND sql LIKE 'CREATE VIRTUAL TABLE%'"))
    for (name,) in names.all():
        op.execute(f'DROP TABLE "{name}"')
    op.execute("ALTER TABLE knowledge_bases DROP COLUMN vector_version")  # native since SQLite 3.35
