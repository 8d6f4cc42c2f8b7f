"""Feedback, span metrics and span events (issue 15), and the index trace listings page over.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(36)
JSON = sa.Text().with_variant(JSONB(), "postgresql")  # JSON text on SQLite: see tables.JSONText
ROOTS = sa.text("parent_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "span_events",
        sa.Column("id", ID),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("span_id", sa.Text, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_span_events"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name="fk_span_events_project_id_projects"),
    )
    op.create_index("ix_span_events_project_id_span_id_origin_created_at", "span_events",
                    ["project_id", "span_id", "origin", "created_at"])
    op.create_index("ix_span_events_project_id_trace_id_created_at", "span_events",
                    ["project_id", "trace_id", "created_at"])
    op.create_index("ix_spans_roots", "spans", ["project_id", "start_time", "trace_id"],
                    sqlite_where=ROOTS, postgresql_where=ROOTS)
    op.create_index("ix_spans_root_traces", "spans", ["project_id", "trace_id", "start_time", "id"],
                    sqlite_where=ROOTS, postgresql_where=ROOTS)


def downgrade() -> None:
    op.drop_index("ix_spans_root_traces", "spans")
    op.drop_index("ix_spans_roots", "spans")
    op.drop_table("span_events")
