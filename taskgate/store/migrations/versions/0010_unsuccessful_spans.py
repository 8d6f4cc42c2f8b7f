"""The spans that did not succeed, indexed by project and time (issue 20's UI: its status filter).

A partial index (`WHERE status <> 'ok'`): the filter for failed or cancelled calls reads only those
spans, newest first, and the spans that succeed, nearly all of them, cost nothing more to write.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_spans_unsuccessful", "spans", ["project_id", "start_time"],
                    sqlite_where=sa.text("status <> 'ok'"), postgresql_where=sa.text("status <> 'ok'"))


def downgrade() -> None:
    op.drop_index("ix_spans_unsuccessful", table_name="spans")
