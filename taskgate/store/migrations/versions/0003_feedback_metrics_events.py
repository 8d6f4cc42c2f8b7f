"""Feedback, span metrics and span events (issue 15).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the part of issue 15 that owns these tables."""


def downgrade() -> None:
    """Filled in with upgrade."""
