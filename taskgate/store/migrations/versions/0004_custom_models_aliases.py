"""Custom models and model aliases (issue 15).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the part of issue 15 that owns these tables."""


def downgrade() -> None:
    """Filled in with upgrade."""
