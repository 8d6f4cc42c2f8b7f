"""What callers wrote reads back as written on Postgres: `json`, not `jsonb`, for those columns.

`jsonb` stores objects with their keys reordered (shortest first), so a function's output schema,
an example's answer or a span's output came back in another order than the caller's. Property order
is part of a schema's meaning (issue 17), so these columns become `json`, which keeps the text. No
query looks inside them, so nothing needs `jsonb`'s operators or indexes. Rows written before keep
the order `jsonb` gave them: that order is lost. SQLite stores JSON as text already: nothing to do.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.dialects.postgresql import JSON, JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("function_revisions", "definition"),
    ("examples", "input"),
    ("examples", "output"),
    ("examples", "expected"),
    ("spans", "input"),
    ("spans", "output"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=JSON(), existing_type=JSONB(), postgresql_using=f"{column}::json")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=JSONB(), existing_type=JSON(), postgresql_using=f"{column}::jsonb")
