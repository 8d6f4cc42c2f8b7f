"""Generations, and the indexes analytics aggregate on (issue 15).

`generations` keeps each call's raw provider exchanges (see `tables.generations`). Usage reports
read spans by (project_id, start_time), which 0001 indexes already.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.String(36)),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.Column("span_id", sa.Text, nullable=True),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("request_truncated", sa.Boolean, nullable=False),
        sa.Column("response_truncated", sa.Boolean, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_generations"),  # no FK: see tables.generations
    )
    op.create_index("ix_generations_project_id_created_at", "generations", ["project_id", "created_at"])
    op.create_index("ix_generations_project_id_span_id", "generations", ["project_id", "span_id"])


def downgrade() -> None:
    op.drop_index("ix_generations_project_id_span_id", "generations")
    op.drop_index("ix_generations_project_id_created_at", "generations")
    op.drop_table("generations")
