"""Feedback, span metrics and span events (issue 15), and the index trace listings page over.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(36)
JSON = sa.Text().with_variant(JSONB(), "postgresql")  # JSON text on SQLite: see tables.JSONText
ROOTS = sa.text("parent_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "span_events",
        sa.Column("id", ID),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("span_id", sa.Text, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_span_events"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name="fk_span_events_project_id_projects"),
    )
    op.create_index("ix_span_events_project_id_span_id_origin_created_at", "span_events",
                    ["project_id", "span_id", "origin", "created_at"])
    op.create_index("ix_span_events_project_id_trace_id_created_at", "span_events",
                    ["project_id", "trace_id", "created_at"])
    op.create_index("ix_spans_roots", "spans", ["project_id", "start_time", "trace_id"],
                    sqlite_where=ROOTS, postgresql_where=ROOTS)
    op.create_table(
        "root_span_counts",
        sa.Column("project_id", ID),
        sa.Column("roots", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_root_span_counts"),
    )
    op.execute("INSERT INTO root_span_counts (project_id, roots) "
               "SELECT project_id, count(*) FROM spans WHERE parent_id IS NULL GROUP BY project_id")
    if op.get_bind().dialect.name == "postgresql":
        _count_roots_postgres()
    else:
        _count_roots_sqlite()


def _count_roots_sqlite() -> None:
    """A span batch's upsert fires INSERT for new rows and UPDATE for rewritten ones; only a change
    of parenthood moves the count. SQLite has one writer at a time, so row triggers cannot deadlock."""
    op.execute("CREATE TRIGGER spans_root_insert AFTER INSERT ON spans WHEN new.parent_id IS NULL BEGIN "
               "INSERT INTO root_span_counts (project_id, roots) VALUES (new.project_id, 1) "
               "ON CONFLICT (project_id) DO UPDATE SET roots = roots + 1; END")
    op.execute("CREATE TRIGGER spans_root_delete AFTER DELETE ON spans WHEN old.parent_id IS NULL BEGIN "
               "UPDATE root_span_counts SET roots = roots - 1 WHERE project_id = old.project_id; END")
    op.execute("CREATE TRIGGER spans_root_update AFTER UPDATE OF parent_id ON spans "
               "WHEN (old.parent_id IS NULL) <> (new.parent_id IS NULL) BEGIN "
               "UPDATE root_span_counts SET roots = roots + (CASE WHEN new.parent_id IS NULL THEN 1 ELSE -1 END) "
               "WHERE project_id = new.project_id; END")


def _count_roots_postgres() -> None:
    """Deferred to commit: a transaction then takes its project's count row only after every span
    row it writes, so two writers never hold one each while waiting for the other (no deadlock)."""
    op.execute("""
        CREATE FUNCTION taskgate_count_roots() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' AND NEW.parent_id IS NULL THEN
                INSERT INTO root_span_counts (project_id, roots) VALUES (NEW.project_id, 1)
                ON CONFLICT (project_id) DO UPDATE SET roots = root_span_counts.roots + 1;
            ELSIF TG_OP = 'DELETE' AND OLD.parent_id IS NULL THEN
                UPDATE root_span_counts SET roots = roots - 1 WHERE project_id = OLD.project_id;
            ELSIF TG_OP = 'UPDATE' AND (OLD.parent_id IS NULL) <> (NEW.parent_id IS NULL) THEN
                UPDATE root_span_counts SET roots = roots + (CASE WHEN NEW.parent_id IS NULL THEN 1 ELSE -1 END)
                WHERE project_id = NEW.project_id;
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("CREATE CONSTRAINT TRIGGER spans_count_roots AFTER INSERT OR DELETE OR UPDATE OF parent_id ON spans "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION taskgate_count_roots()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER spans_count_roots ON spans")
        op.execute("DROP FUNCTION taskgate_count_roots()")
    else:
        for trigger in ("spans_root_insert", "spans_root_delete", "spans_root_update"):
            op.execute(f"DROP TRIGGER {trigger}")
    op.drop_table("root_span_counts")
    op.drop_index("ix_spans_roots", "spans")
    op.drop_table("span_events")
