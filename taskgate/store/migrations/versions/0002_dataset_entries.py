"""Datasets: what v2 dataset entries add to examples (issue 15).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Filled in by the part of issue 15 that owns these tables."""


def downgrade() -> None:
    """Filled in with upgrade."""
