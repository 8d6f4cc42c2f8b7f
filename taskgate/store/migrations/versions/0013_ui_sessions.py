"""UI sessions kept in the store (issue 20): a sign-out or a revoked key ends a session on every process.

A session cookie is still signed, but it opens pages only while its row is here and its key is live:
signing out deletes the row, a page's read joins the key's row (a revoked key's sessions open nothing
from the revoking transaction on; a deleted key's rows go with it), and sign-ins prune expired rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("api_key_id", sa.String(36), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ui_sessions_expires_at", "ui_sessions", ["expires_at"])
    op.create_index("ix_ui_sessions_api_key_id", "ui_sessions", ["api_key_id"])


def downgrade() -> None:
    op.drop_table("ui_sessions")
