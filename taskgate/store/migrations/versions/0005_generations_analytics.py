"""Generations, and the indexes analytics aggregate on (issue 15).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the part of issue 15 that owns these tables."""


def downgrade() -> None:
    """Filled in with upgrade."""
