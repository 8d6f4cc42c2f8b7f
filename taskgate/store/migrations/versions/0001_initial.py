"""Initial schema: projects, keys, functions and revisions, examples with full-text search, spans, cache.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(36)
JSON = sa.Text().with_variant(JSONB(), "postgresql")  # JSON text on SQLite: see tables.JSONText


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", ID),
        sa.Column("name", sa.String(200), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", ID),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name="fk_api_keys_project_id_projects"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "functions",
        sa.Column("id", ID),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("current_revision_id", ID, nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False),
        sa.Column("schema_hash", sa.String(64), nullable=False),
        sa.Column("hit_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("few_shot_count", sa.Integer, nullable=False, server_default="3"),
        sa.Column("dataset_id", ID, nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("deleted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_functions"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name="fk_functions_project_id_projects"),
    )
    op.create_index("uq_functions_live_name", "functions", ["project_id", "name"], unique=True,
                    sqlite_where=sa.text("deleted_at IS NULL"), postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "function_revisions",
        sa.Column("id", ID),
        sa.Column("function_id", ID, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("schema_hash", sa.String(64), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_function_revisions"),
        sa.ForeignKeyConstraint(["function_id"], ["functions.id"], ondelete="CASCADE",
                                name="fk_function_revisions_function_id_functions"),
        sa.UniqueConstraint("function_id", "number", name="uq_function_revisions_function_id_number"),
    )
    op.create_table(
        "examples",
        sa.Column("id", ID),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("function_id", ID, nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("search_text", sa.Text, nullable=False),
        sa.Column("tag", sa.String(100), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_examples"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name="fk_examples_project_id_projects"),
        sa.ForeignKeyConstraint(["function_id"], ["functions.id"], ondelete="CASCADE",
                                name="fk_examples_function_id_functions"),
    )
    op.create_index("ix_examples_project_id_function_id_created_at", "examples",
                    ["project_id", "function_id", "created_at"])
    _create_example_search()
    op.create_table(
        "spans",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text, nullable=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        _time("start_time", nullable=True),
        _time("end_time", nullable=True),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("model_chain", JSON, nullable=False),
        sa.Column("model_used", sa.Text, nullable=True),
        sa.Column("models_failed", JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("usage", JSON, nullable=False),
        sa.Column("total_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("meta", JSON, nullable=False),
        sa.Column("function_name", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("project_id", "id", name="pk_spans"),  # no FK: see tables.spans
    )
    op.create_index("ix_spans_project_id_trace_id", "spans", ["project_id", "trace_id"])
    op.create_index("ix_spans_project_id_start_time", "spans", ["project_id", "start_time"])
    op.create_table(
        "cache_entries",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("project_id", "key", name="pk_cache_entries"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name="fk_cache_entries_project_id_projects"),
    )
    op.create_index("ix_cache_entries_expires_at", "cache_entries", ["expires_at"])


def _create_example_search() -> None:
    """SQLite: an FTS5 table kept in step by triggers. Postgres: a GIN index on the tsvector expression
    that taskgate.store.examples queries (the expressions must match for the index to be used)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_examples_search ON examples USING gin (to_tsvector('simple', search_text))")
        return
    op.execute("CREATE VIRTUAL TABLE examples_fts USING fts5("
               "example_id UNINDEXED, function_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')")
    op.execute("CREATE TRIGGER examples_fts_insert AFTER INSERT ON examples BEGIN "
               "INSERT INTO examples_fts (example_id, function_id, body) "
               "VALUES (new.id, new.function_id, new.search_text); END")
    op.execute("CREATE TRIGGER examples_fts_delete AFTER DELETE ON examples BEGIN "
               "DELETE FROM examples_fts WHERE example_id = old.id; END")
    op.execute("CREATE TRIGGER examples_fts_update AFTER UPDATE OF search_text ON examples BEGIN "
               "DELETE FROM examples_fts WHERE example_id = old.id; "
               "INSERT INTO examples_fts (example_id, function_id, body) "
               "VALUES (new.id, new.function_id, new.search_text); END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE examples_fts")
    for table in ("cache_entries", "spans", "examples", "function_revisions", "functions", "api_keys",
                  "projects"):
        op.drop_table(table)
