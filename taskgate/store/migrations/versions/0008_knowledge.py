"""Knowledge bases (issue 18): named per project, holding documents by key, cut into chunks.

Each chunk (an integer id: on SQLite the rowid, which the FTS5 row shares, so a delete finds it
by rowid) keeps its text and its vector (float32 bytes, unit length) for exact cosine search, and
its words are indexed for full-text search: SQLite in the FTS5 table `knowledge_chunks_fts`, kept in
step by triggers; Postgres through a GIN index on the `to_tsvector('simple', content)` expression
that `taskgate.store.knowledge` queries (the expressions must match for the index to be used).
A knowledge base's `version` goes up with every change of its chunks, so a search's copy of its
vectors in memory can tell it is stale. Deleting a knowledge base or a document deletes its chunks
(foreign keys, ON DELETE CASCADE).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.String(36)
JSON = sa.Text().with_variant(JSONB(), "postgresql")  # JSON text on SQLite: see tables.JSONText
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "knowledge_bases",
        sa.Column("id", ID, primary_key=True),
        sa.Column("project_id", ID, sa.ForeignKey("projects.id", ondelete="CASCADE",
                                                  name="fk_knowledge_bases_project_id_projects"), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("embedding_model", sa.String(300), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_bases"),
        sa.UniqueConstraint("project_id", "name", name="uq_knowledge_bases_project_id_name"),
    )
    op.create_table(
        "knowledge_documents",
        sa.Column("id", ID, primary_key=True),
        sa.Column("knowledge_base_id", ID, sa.ForeignKey(
            "knowledge_bases.id", ondelete="CASCADE", name="fk_knowledge_documents_knowledge_base_id_knowledge_bases"),
            nullable=False),
        sa.Column("key", sa.String(1000), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_documents"),
        sa.UniqueConstraint("knowledge_base_id", "key", name="uq_knowledge_documents_knowledge_base_id_key"),
    )
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("knowledge_base_id", ID, sa.ForeignKey(
            "knowledge_bases.id", ondelete="CASCADE", name="fk_knowledge_chunks_knowledge_base_id_knowledge_bases"),
            nullable=False),
        sa.Column("document_id", ID, sa.ForeignKey(
            "knowledge_documents.id", ondelete="CASCADE", name="fk_knowledge_chunks_document_id_knowledge_documents"),
            nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_chunks"),
    )
    op.create_index("ix_knowledge_chunks_knowledge_base_id", "knowledge_chunks", ["knowledge_base_id"])
    op.create_index("ix_knowledge_chunks_document_id_position", "knowledge_chunks", ["document_id", "position"])
    _create_chunk_search()


def _create_chunk_search() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_knowledge_chunks_search ON knowledge_chunks "
                   "USING gin (to_tsvector('simple', content))")
        return
    op.execute("CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5("
               "knowledge_base_id UNINDEXED, body, "
               "tokenize = 'unicode61 remove_diacritics 2')")
    op.execute("CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN "
               "INSERT INTO knowledge_chunks_fts (rowid, knowledge_base_id, body) "
               "VALUES (new.id, new.knowledge_base_id, new.content); END")
    op.execute("CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN "
               "DELETE FROM knowledge_chunks_fts WHERE rowid = old.id; END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE knowledge_chunks_fts")
    for table in ("knowledge_chunks", "knowledge_documents", "knowledge_bases"):
        op.drop_table(table)
