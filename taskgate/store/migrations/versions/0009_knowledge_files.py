"""Files uploaded to knowledge bases (issue 18): the bytes themselves, kept in the store so every
replica reads them and no caller-supplied name ever becomes a path, and their ingestion's state.

A file is reserved by `upload_url` (status `reserved`, no bytes yet, not listed), gets its bytes
through the signed upload URL, and is registered (`pending`); a direct upload is both at once.
Ingestion then moves it to `processing` and `completed`, or `failed` with `error`. Its text is the
document whose key is the file's id; `number` is the integer `document_id` the v2 wire reports.
Deleting the knowledge base deletes its files (ON DELETE CASCADE).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.String(36)
JSON = sa.Text().with_variant(JSONB(), "postgresql")  # JSON text on SQLite: see tables.JSONText
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "knowledge_files",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", ID, nullable=False),
        sa.Column("knowledge_base_id", ID, sa.ForeignKey(
            "knowledge_bases.id", ondelete="CASCADE", name="fk_knowledge_files_knowledge_base_id_knowledge_bases"),
            nullable=False),
        sa.Column("original_filename", sa.String(300), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("chunk_size", sa.Integer, nullable=False),
        sa.Column("chunk_overlap", sa.Integer, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_knowledge_files"),
        sa.UniqueConstraint("id", name="uq_knowledge_files_id"),
    )
    op.create_index("ix_knowledge_files_knowledge_base_id", "knowledge_files", ["knowledge_base_id"])


def downgrade() -> None:
    op.drop_table("knowledge_files")
