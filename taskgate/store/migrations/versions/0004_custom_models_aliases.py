"""Custom models and model aliases (issue 15).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(36)
JSON = sa.Text().with_variant(JSONB(), "postgresql")  # JSON text on SQLite: see tables.JSONText


def _named_table(table: str, *columns: sa.Column[object]) -> None:
    """A project's named objects: id, project, unique name, the given columns, timestamps."""
    op.create_table(
        table,
        sa.Column("id", ID),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        *columns,
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name=f"fk_{table}_project_id_projects"),
        sa.UniqueConstraint("project_id", "name", name=f"uq_{table}_project_id_name"),
    )


def upgrade() -> None:
    _named_table(
        "custom_models",
        sa.Column("identifier", sa.String(300), nullable=False),
        sa.Column("extra", JSON, nullable=False),
        sa.Column("api_key_sealed", sa.Text, nullable=True),
    )
    _named_table(
        "model_aliases",
        sa.Column("fallback_models", JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("model_aliases")
    op.drop_table("custom_models")
