"""Keys with limits (issue 19): requests and tokens per minute, a USD budget per day or month and
an allowed model list, on a key and on a project; an admin flag, a name and revocation on keys;
and the usage totals per key and project, per UTC day and month, that budgets are counted from.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

LIMIT_COLUMNS = ("rpm", "tpm", "budget_usd", "budget_period", "models")


def _limit_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.BigInteger, nullable=True),
        sa.Column("budget_usd", sa.Float, nullable=True),
        sa.Column("budget_period", sa.String(8), nullable=True),
        sa.Column("models", sa.Text, nullable=True),
    ]


def upgrade() -> None:
    for column in _limit_columns():
        op.add_column("projects", column)
    key_columns: list[sa.Column[Any]] = [
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        *_limit_columns(),
    ]
    for key_column in key_columns:
        op.add_column("api_keys", key_column)
    op.create_table(
        "usage_totals",
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("period_key", sa.String(20), nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_nano_usd", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("subject", "period_key", name="pk_usage_totals"),
    )


def downgrade() -> None:
    """Columns are dropped in place (SQLite has had DROP COLUMN since 3.35), never by batch mode's
    copy-and-swap of the table: on SQLite that drops `projects` under every table that cascades
    from it, deleting the project's functions, spans and knowledge with it."""
    op.drop_table("usage_totals")
    for name in ("name", "admin", "revoked_at", *LIMIT_COLUMNS):
        op.drop_column("api_keys", name)
    for name in LIMIT_COLUMNS:
        op.drop_column("projects", name)
