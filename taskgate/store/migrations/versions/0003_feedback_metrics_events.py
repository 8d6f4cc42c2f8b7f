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
    op.create_index("ix_spans_roots", "spans", ["project_id", "trace_id", "start_time"],
                    sqlite_where=ROOTS, postgresql_where=ROOTS)
    op.create_table(
        "trace_roots",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("root_id", sa.Text, nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "trace_id", name="pk_trace_roots"),
    )
    op.create_index("ix_trace_roots_project_id_start_time_trace_id", "trace_roots",
                    ["project_id", "start_time", "trace_id"])
    op.create_table(
        "trace_counts",
        sa.Column("project_id", ID),
        sa.Column("traces", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_trace_counts"),
    )
    op.execute(f"INSERT INTO trace_roots (project_id, trace_id, root_id, start_time) "
               f"SELECT project_id, trace_id, id, start_time FROM (SELECT project_id, trace_id, id, start_time, "
               f"row_number() OVER (PARTITION BY project_id, trace_id ORDER BY {_EARLIEST}) AS position "
               f"FROM spans WHERE parent_id IS NULL) AS roots WHERE position = 1")
    op.execute("INSERT INTO trace_counts (project_id, traces) "
               "SELECT project_id, count(*) FROM trace_roots GROUP BY project_id")
    if op.get_bind().dialect.name == "postgresql":
        _keep_trace_roots_postgres()
    else:
        _keep_trace_roots_sqlite()


# A trace's row, made again from its root spans as they are now: its earliest root (by start, one
# without a start last, then by id), or no row when it has none left. Recomputing rather than
# adjusting makes every firing idempotent, in whatever order the span rows of a batch arrive.
_EARLIEST = "start_time IS NULL, start_time, id"
_RECOMPUTE = f"""
    DELETE FROM trace_roots WHERE project_id = {{p}} AND trace_id = {{t}} AND NOT EXISTS (
        SELECT 1 FROM spans WHERE project_id = {{p}} AND trace_id = {{t}} AND parent_id IS NULL);
    INSERT INTO trace_roots (project_id, trace_id, root_id, start_time)
        SELECT project_id, trace_id, id, start_time FROM spans
        WHERE project_id = {{p}} AND trace_id = {{t}} AND parent_id IS NULL ORDER BY {_EARLIEST} LIMIT 1
        ON CONFLICT (project_id, trace_id) DO UPDATE SET root_id = excluded.root_id, start_time = excluded.start_time;
"""
_COUNT_UP = "INSERT INTO trace_counts (project_id, traces) VALUES ({p}, 1) " \
            "ON CONFLICT (project_id) DO UPDATE SET traces = trace_counts.traces + 1;"
_COUNT_DOWN = "UPDATE trace_counts SET traces = traces - 1 WHERE project_id = {p};"


def _keep_trace_roots_sqlite() -> None:
    """A batch's upsert fires INSERT for new span rows and UPDATE for rewritten ones. SQLite has one
    writer at a time, so row triggers cannot deadlock."""
    new, old = _RECOMPUTE.format(p="new.project_id", t="new.trace_id"), _RECOMPUTE.format(
        p="old.project_id", t="old.trace_id")
    op.execute(f"CREATE TRIGGER spans_roots_insert AFTER INSERT ON spans WHEN new.parent_id IS NULL "
               f"BEGIN {new} END")
    op.execute(f"CREATE TRIGGER spans_roots_delete AFTER DELETE ON spans WHEN old.parent_id IS NULL "
               f"BEGIN {old} END")
    op.execute(f"CREATE TRIGGER spans_roots_update AFTER UPDATE OF parent_id, trace_id, start_time ON spans "
               f"WHEN old.parent_id IS NULL OR new.parent_id IS NULL BEGIN {old} {new} END")
    op.execute(f"CREATE TRIGGER trace_roots_counted AFTER INSERT ON trace_roots "
               f"BEGIN {_COUNT_UP.format(p='new.project_id')} END")
    op.execute(f"CREATE TRIGGER trace_roots_uncounted AFTER DELETE ON trace_roots "
               f"BEGIN {_COUNT_DOWN.format(p='old.project_id')} END")


def _keep_trace_roots_postgres() -> None:
    """Deferred to commit, and behind a per-project advisory lock: a transaction takes its traces'
    rows and the count row only once every span row it writes is held, and one project's
    committing writers take them one at a time, so two writers never wait on each other in a
    circle (no deadlock between replicas)."""
    op.execute(f"""
        CREATE FUNCTION taskgate_trace_roots() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            changed spans%ROWTYPE;
        BEGIN
            IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
            IF changed.parent_id IS NOT NULL AND (TG_OP <> 'UPDATE' OR OLD.parent_id IS NOT NULL) THEN
                RETURN NULL;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtext('taskgate.trace_roots'), hashtext(changed.project_id));
            {_RECOMPUTE.format(p="changed.project_id", t="changed.trace_id")}
            IF TG_OP = 'UPDATE' AND OLD.trace_id <> NEW.trace_id THEN
                {_RECOMPUTE.format(p="OLD.project_id", t="OLD.trace_id")}
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("CREATE CONSTRAINT TRIGGER spans_trace_roots AFTER INSERT OR DELETE "
               "OR UPDATE OF parent_id, trace_id, start_time ON spans "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION taskgate_trace_roots()")
    op.execute(f"""
        CREATE FUNCTION taskgate_trace_counts() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN {_COUNT_UP.format(p="NEW.project_id")}
            ELSE {_COUNT_DOWN.format(p="OLD.project_id")}
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER trace_roots_counted AFTER INSERT OR DELETE ON trace_roots "
               "FOR EACH ROW EXECUTE FUNCTION taskgate_trace_counts()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER spans_trace_roots ON spans")
        op.execute("DROP FUNCTION taskgate_trace_roots()")
        op.execute("DROP TRIGGER trace_roots_counted ON trace_roots")
        op.execute("DROP FUNCTION taskgate_trace_counts()")
    else:
        for trigger in ("spans_roots_insert", "spans_roots_delete", "spans_roots_update"):
            op.execute(f"DROP TRIGGER {trigger}")
    op.drop_table("trace_counts")
    op.drop_table("trace_roots")
    op.drop_index("ix_spans_roots", "spans")
    op.drop_table("span_events")
