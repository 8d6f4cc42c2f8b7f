"""Datasets: what v2 dataset entries add to examples (issue 15).

An entry is an example row. It gains `expected` (an edited version of the output), and the vector
of its input with the model that made it, for semantic search (`taskgate.store.datasets`). A
function's dataset is found by its id, so `functions(project_id, dataset_id)` gets an index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.Text().with_variant(JSONB(), "postgresql")  # JSON text on SQLite: see tables.JSONText


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of the table): the FTS5 triggers on `examples` must stay.
    op.add_column("examples", sa.Column("expected", JSON, nullable=True))
    op.add_column("examples", sa.Column("embedding", JSON, nullable=True))
    op.add_column("examples", sa.Column("embedding_model", sa.Text, nullable=True))
    op.create_index("ix_functions_project_id_dataset_id", "functions", ["project_id", "dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_functions_project_id_dataset_id", table_name="functions")
    for column in ("embedding_model", "embedding", "expected"):
        op.drop_column("examples", column)
