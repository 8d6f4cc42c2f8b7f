"""Trace listings filtered by name without reading every root (issue 15).

A trace's name is its earliest root's, the name a listing shows. `trace_roots` now keeps it (with an
index on project, name, start), and `trace_names` keeps each project's distinct trace names with
how many traces carry each. A filter (a substring, which no index serves) is then matched against
the few distinct names, its total is the sum of their counts, and its page comes from an index:
before, every root span of the project was scanned for the substring (about 235 ms at 200,000
spans). The same triggers as 0003 keep both tables, so every writer keeps them alike.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from importlib import import_module

import sqlalchemy as sa
from alembic import op

# 0003 is fixed history: its count statements and root order are this migration's too.
_V0003 = import_module("taskgate.store.migrations.versions.0003_feedback_metrics_events")
_EARLIEST, _COUNT_UP, _COUNT_DOWN = _V0003._EARLIEST, _V0003._COUNT_UP, _V0003._COUNT_DOWN

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.String(36)
# What the name tables keep of a name: its first 500 characters. A name may be 1024 characters of
# up to 4 UTF-8 bytes, and a Postgres btree entry holds at most 2704 bytes: a longer key would fail
# the whole batch of spans. A filter matches within those characters.
_KEPT_NAME = "substr({name}, 1, 500)"


def _recompute(p: str, t: str) -> str:
    """0003's recomputation of a trace's row, now carrying the root's name."""
    return f"""
    DELETE FROM trace_roots WHERE project_id = {p} AND trace_id = {t} AND NOT EXISTS (
        SELECT 1 FROM spans WHERE project_id = {p} AND trace_id = {t} AND parent_id IS NULL);
    INSERT INTO trace_roots (project_id, trace_id, root_id, start_time, name)
        SELECT project_id, trace_id, id, start_time, {_KEPT_NAME.format(name="name")} FROM spans
        WHERE project_id = {p} AND trace_id = {t} AND parent_id IS NULL ORDER BY {_EARLIEST} LIMIT 1
        ON CONFLICT (project_id, trace_id) DO UPDATE SET root_id = excluded.root_id,
            start_time = excluded.start_time, name = excluded.name;
"""


# A root span inserted can only become its trace's earliest root or leave the row as it is: the row
# is upserted from the new span alone, replaced only when the new span comes first (by start, one
# without a start last, then by id). This is what 0003's recomputation decides for an insert,
# without its look-ups in `spans` (a third of a root span's write).
_EARLIER = ("(excluded.start_time IS NOT NULL AND (trace_roots.start_time IS NULL"
            " OR excluded.start_time < trace_roots.start_time"
            " OR (excluded.start_time = trace_roots.start_time AND excluded.root_id < trace_roots.root_id)))"
            " OR (excluded.start_time IS NULL AND trace_roots.start_time IS NULL"
            " AND excluded.root_id < trace_roots.root_id)")
_INSERTED_ROOT = f"""
    INSERT INTO trace_roots (project_id, trace_id, root_id, start_time, name)
        VALUES (new.project_id, new.trace_id, new.id, new.start_time, {_KEPT_NAME.format(name="new.name")})
        ON CONFLICT (project_id, trace_id) DO UPDATE SET root_id = excluded.root_id,
            start_time = excluded.start_time, name = excluded.name WHERE {_EARLIER};
"""


def _name_up(p: str, n: str) -> str:
    return (f"INSERT INTO trace_names (project_id, name, traces) VALUES ({p}, {n}, 1) "
            f"ON CONFLICT (project_id, name) DO UPDATE SET traces = trace_names.traces + 1;")


def _name_down(p: str, n: str) -> str:
    return (f"UPDATE trace_names SET traces = traces - 1 WHERE project_id = {p} AND name = {n}; "
            f"DELETE FROM trace_names WHERE project_id = {p} AND name = {n} AND traces <= 0;")


_SPAN_COLUMNS = "parent_id, trace_id, start_time, name"


ROOTS = sa.text("parent_id IS NULL")


def upgrade() -> None:
    # Only 0003's recomputation read roots by this index; an insert no longer recomputes, and a
    # delete or a rewrite finds its trace's few spans by (project_id, trace_id). One index fewer to
    # write with every root span.
    op.drop_index("ix_spans_roots", "spans")
    op.add_column("trace_roots", sa.Column("name", sa.Text, nullable=True))
    op.execute(f"UPDATE trace_roots SET name = (SELECT {_KEPT_NAME.format(name='spans.name')} FROM spans "
               "WHERE spans.project_id = trace_roots.project_id AND spans.id = trace_roots.root_id)")
    op.create_index("ix_trace_roots_project_id_name_start_time_trace_id", "trace_roots",
                    ["project_id", "name", "start_time", "trace_id"])
    op.create_table(
        "trace_names",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("traces", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "name", name="pk_trace_names"),
        sqlite_with_rowid=False,  # one B-tree, not a table and its key's index: written with every new trace
    )
    op.execute("INSERT INTO trace_names (project_id, name, traces) SELECT project_id, name, count(*) "
               "FROM trace_roots WHERE name IS NOT NULL GROUP BY project_id, name")
    if op.get_bind().dialect.name == "postgresql":
        _postgres()
    else:
        _sqlite()


_SQLITE_TRIGGERS = ("spans_roots_insert", "spans_roots_delete", "spans_roots_update",
                    "trace_roots_counted", "trace_roots_uncounted")


def _sqlite() -> None:
    for trigger in _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger}")
    new, old = _recompute("new.project_id", "new.trace_id"), _recompute("old.project_id", "old.trace_id")
    # Rows come in in any order, and a batch's upsert fires INSERT for new rows, UPDATE for rewrites.
    op.execute(f"CREATE TRIGGER spans_roots_insert AFTER INSERT ON spans WHEN new.parent_id IS NULL "
               f"BEGIN {_INSERTED_ROOT} END")
    op.execute(f"CREATE TRIGGER spans_roots_delete AFTER DELETE ON spans WHEN old.parent_id IS NULL "
               f"BEGIN {old} END")
    op.execute(f"CREATE TRIGGER spans_roots_update AFTER UPDATE OF {_SPAN_COLUMNS} ON spans "
               f"WHEN old.parent_id IS NULL OR new.parent_id IS NULL BEGIN {old} {new} END")
    op.execute(f"CREATE TRIGGER trace_roots_counted AFTER INSERT ON trace_roots BEGIN "
               f"{_COUNT_UP.format(p='new.project_id')} {_name_up('new.project_id', 'new.name')} END")
    op.execute(f"CREATE TRIGGER trace_roots_uncounted AFTER DELETE ON trace_roots BEGIN "
               f"{_COUNT_DOWN.format(p='old.project_id')} {_name_down('old.project_id', 'old.name')} END")
    op.execute(f"CREATE TRIGGER trace_roots_renamed AFTER UPDATE OF name ON trace_roots "
               f"WHEN old.name IS NOT new.name BEGIN {_name_down('old.project_id', 'old.name')} "
               f"{_name_up('new.project_id', 'new.name')} END")


def _postgres() -> None:
    """0003's functions, replaced in place; the span trigger now also fires when a root is renamed,
    and the trace_roots trigger on a rename."""
    op.execute(f"""
        CREATE OR REPLACE FUNCTION taskgate_trace_roots() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            changed spans%ROWTYPE;
        BEGIN
            IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
            IF changed.parent_id IS NOT NULL AND (TG_OP <> 'UPDATE' OR OLD.parent_id IS NOT NULL) THEN
                RETURN NULL;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtext('taskgate.trace_roots'), hashtext(changed.project_id));
            {_recompute("changed.project_id", "changed.trace_id")}
            IF TG_OP = 'UPDATE' AND OLD.trace_id <> NEW.trace_id THEN
                {_recompute("OLD.project_id", "OLD.trace_id")}
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("DROP TRIGGER spans_trace_roots ON spans")
    op.execute(f"CREATE CONSTRAINT TRIGGER spans_trace_roots AFTER INSERT OR DELETE "
               f"OR UPDATE OF {_SPAN_COLUMNS} ON spans "
               f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION taskgate_trace_roots()")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION taskgate_trace_counts() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {_COUNT_UP.format(p="NEW.project_id")}
                IF NEW.name IS NOT NULL THEN {_name_up("NEW.project_id", "NEW.name")} END IF;
            ELSIF TG_OP = 'DELETE' THEN
                {_COUNT_DOWN.format(p="OLD.project_id")}
                IF OLD.name IS NOT NULL THEN {_name_down("OLD.project_id", "OLD.name")} END IF;
            ELSIF OLD.name IS DISTINCT FROM NEW.name THEN
                IF OLD.name IS NOT NULL THEN {_name_down("OLD.project_id", "OLD.name")} END IF;
                IF NEW.name IS NOT NULL THEN {_name_up("NEW.project_id", "NEW.name")} END IF;
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("DROP TRIGGER trace_roots_counted ON trace_roots")
    op.execute("CREATE TRIGGER trace_roots_counted AFTER INSERT OR DELETE OR UPDATE OF name ON trace_roots "
               "FOR EACH ROW EXECUTE FUNCTION taskgate_trace_counts()")


def downgrade() -> None:
    """Back to 0003's triggers (their definitions are that migration's), without the names."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER spans_trace_roots ON spans")
        op.execute("DROP FUNCTION taskgate_trace_roots()")
        op.execute("DROP TRIGGER trace_roots_counted ON trace_roots")
        op.execute("DROP FUNCTION taskgate_trace_counts()")
    else:
        for trigger in (*_SQLITE_TRIGGERS, "trace_roots_renamed"):
            op.execute(f"DROP TRIGGER {trigger}")
    op.drop_table("trace_names")
    op.create_index("ix_spans_roots", "spans", ["project_id", "trace_id", "start_time"],
                    sqlite_where=ROOTS, postgresql_where=ROOTS)
    op.drop_index("ix_trace_roots_project_id_name_start_time_trace_id", "trace_roots")
    op.drop_column("trace_roots", "name")
    if op.get_bind().dialect.name == "postgresql":
        _V0003._keep_trace_roots_postgres()
    else:
        _V0003._keep_trace_roots_sqlite()
