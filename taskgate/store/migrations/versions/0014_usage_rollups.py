"""Hourly usage rollups kept by triggers on `spans` (issues 15 and 20: usage at 200,000 spans).

`usage_hours` sums, per (project, hour, model, function), the spans a usage report counts (with a
start, and a cost or tokens); `usage_tag_hours` the same per (project, tag key, hour, tag value).
Triggers on `spans` add a span's contribution when it is inserted, take the old one away and add
the new when a counted column changes (a span is upserted more than once: a stream opened, then
finished), and take it away when it is deleted; a row whose calls come to 0 is dropped. Every
writer, whichever process, keeps them alike, and a report served from them equals one over spans.
Values are extracted exactly as the raw report extracts them (`json_extract` / `->>`), so a group's
value is the same.

The tag rollup keeps calls, cost and total tokens (what the UI's usage page shows; a report by a tag
that asks for another token count reads raw spans): each of the five more would be one more JSON
extraction per tag on every span's write. It is bounded. A tag is rolled up only if its key is at
most 100 characters without `"` or `\\` (the keys a report may group by) and its value is a string,
an integer or a boolean (on Postgres any number) of at most 100 characters. A key seen with any
other value (a long text, an object, an array, a SQLite real: 1.0 and 1 group together there) or
with more than 1,000 values in one hour is listed in `usage_tag_skipped` for its project, from then
on, and its rows are dropped: reports grouped by it read raw spans. JSON null counts as no value,
as in the raw report. The tests for that run on a tag row's insert (a new value in an hour), not on
every span's write, which carries two upserts and no look-up.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ID = sa.String(36)
HOUR = sa.Text().with_variant(sa.DateTime(timezone=False), "postgresql")
JSON_COUNTERS = ("input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens", "cache_write_tokens")
COUNTERS = ("calls", "cost", "total_tokens", *JSON_COUNTERS)
MAX_TAG_CHARS = 100
MAX_VALUES_PER_HOUR = 1000
HOURS_KEY = "project_id, hour, model_key, function_key"
TAGS_KEY = "project_id, tag_key, hour, tag_value"
TAG_COUNTERS = ("calls", "cost", "total_tokens")
# What a tag value the rollup does not keep is written as, for a moment: longer than any kept value,
# so no kept value can equal it. The row's insert trigger lists the key as skipped and drops its rows.
SKIPPED_VALUE = "~" * (MAX_TAG_CHARS + 1)


def _counted(x: str) -> str:
    """The raw report's filter: the span used something (a price or tokens) and has a start."""
    return f"({x}.start_time IS NOT NULL AND ({x}.cost IS NOT NULL OR {x}.total_tokens > 0))"


def _changed(columns: tuple[str, ...], distinct: str) -> str:
    return "(" + " OR ".join(f"old.{c} {distinct} new.{c}" for c in columns) + ")"


_ROLLED = ("project_id", "start_time", "model_used", "function_name", "cost", "total_tokens", "usage", "tags")


def _name_key(value: str) -> str:
    return f"(CASE WHEN {value} IS NULL THEN '' ELSE '=' || {value} END)"


def _sums(table: str, counters: tuple[str, ...]) -> str:
    return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters)


def _json_counter(dialect: str, name: str, x: str) -> str:
    if dialect == "postgresql":
        return (f"coalesce(CASE WHEN jsonb_typeof({x}.usage -> '{name}') = 'number' "
                f"THEN ({x}.usage ->> '{name}')::numeric END, 0)")
    return f"coalesce(json_extract({x}.usage, '$.{name}'), 0)"


def _values(dialect: str, x: str, sign: str, tags: bool = False) -> list[str]:
    """A span's contribution in COUNTERS (or TAG_COUNTERS) order, times `sign` ('' to add, '-' or
    'sign * ' to take away)."""
    parts = ["1", f"coalesce({x}.cost, 0)", f"{x}.total_tokens"]
    if not tags:
        parts += [_json_counter(dialect, name, x) for name in JSON_COUNTERS]
    return [f"{sign}{part}" for part in parts]


# The key and value tests: `j` is a row of json_each / jsonb_each. A key longer than 100 characters
# or holding `"` or `\` cannot be grouped by (the engine refuses it), so it is simply not rolled up.
_SQLITE_KEY_OK = f"length(j.key) <= {MAX_TAG_CHARS} AND instr(j.key, '\"') = 0 AND instr(j.key, '\\') = 0"
_SQLITE_VALUE_OK = f"j.type IN ('text', 'integer', 'true', 'false') AND length(j.value) <= {MAX_TAG_CHARS}"
_SQLITE_HAS_VALUE = "j.type <> 'null'"
_PG_KEY_OK = f"length(j.key) <= {MAX_TAG_CHARS} AND strpos(j.key, '\"') = 0 AND strpos(j.key, '\\') = 0"
_PG_VALUE_OK = (f"jsonb_typeof(j.value) IN ('string', 'number', 'boolean') "
                f"AND length(j.value #>> '{{}}') <= {MAX_TAG_CHARS}")
_PG_HAS_VALUE = "jsonb_typeof(j.value) <> 'null'"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table("usage_hours", sa.Column("project_id", ID, nullable=False),
                    sa.Column("hour", HOUR, nullable=False), sa.Column("model_key", sa.Text, nullable=False),
                    sa.Column("function_key", sa.Text, nullable=False), *_counter_columns(COUNTERS),
                    sa.PrimaryKeyConstraint(*HOURS_KEY.split(", "), name="pk_usage_hours"), sqlite_with_rowid=False)
    op.create_table("usage_tag_hours", sa.Column("project_id", ID, nullable=False),
                    sa.Column("tag_key", sa.Text, nullable=False), sa.Column("hour", HOUR, nullable=False),
                    sa.Column("tag_value", _Blob() if dialect == "sqlite" else sa.Text, nullable=False),
                    *_counter_columns(TAG_COUNTERS),
                    sa.PrimaryKeyConstraint(*TAGS_KEY.split(", "), name="pk_usage_tag_hours"), sqlite_with_rowid=False)
    op.create_table("usage_tag_skipped", sa.Column("project_id", ID, nullable=False),
                    sa.Column("tag_key", sa.Text, nullable=False),
                    sa.PrimaryKeyConstraint("project_id", "tag_key", name="pk_usage_tag_skipped"),
                    sqlite_with_rowid=False)
    _backfill(dialect)
    if dialect == "postgresql":
        _postgres()
    else:
        _sqlite()


def _counter_columns(counters: tuple[str, ...]) -> list[sa.Column[Any]]:
    """Calls and tokens as integers, cost as a double; JSON counters as numerics on Postgres (as the
    raw report sums them)."""
    json_counter = sa.BigInteger().with_variant(sa.Numeric(), "postgresql")
    types: dict[str, Any] = {"calls": sa.BigInteger(), "cost": sa.Float(), "total_tokens": sa.BigInteger()}
    return [sa.Column(name, types.get(name, json_counter), nullable=False) for name in counters]


class _Blob(sa.types.UserDefinedType[object]):
    """No affinity on SQLite: a tag's integer stays an integer, its text text (as json_extract gives them)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "BLOB"


def _backfill(dialect: str) -> None:
    """The rollups of the spans already stored: the same sums the triggers keep, made in one pass each."""
    pg = dialect == "postgresql"
    hour = "date_trunc('hour', timezone('UTC', s.start_time))" if pg else "substr(s.start_time, 1, 13)"
    each, key_ok, value_ok, has_value = (("jsonb_each(s.tags)", _PG_KEY_OK, _PG_VALUE_OK, _PG_HAS_VALUE) if pg else
                                         ("json_each(s.tags)", _SQLITE_KEY_OK, _SQLITE_VALUE_OK, _SQLITE_HAS_VALUE))
    value = "j.value #>> '{}'" if pg else "j.value"
    sums = ", ".join(f"sum({part})" for part in _values(dialect, "s", ""))
    tag_sums = ", ".join(f"sum({part})" for part in _values(dialect, "s", "", tags=True))
    op.execute(f"INSERT INTO usage_hours ({HOURS_KEY}, {', '.join(COUNTERS)}) SELECT s.project_id, {hour}, "
               f"{_name_key('s.model_used')}, {_name_key('s.function_name')}, {sums} FROM spans s "
               f"WHERE {_counted('s')} GROUP BY 1, 2, 3, 4")
    op.execute(f"INSERT INTO usage_tag_skipped (project_id, tag_key) SELECT DISTINCT s.project_id, j.key "
               f"FROM spans s, {each} j WHERE {_counted('s')} AND {key_ok} AND {has_value} AND NOT ({value_ok})")
    op.execute(f"INSERT INTO usage_tag_skipped (project_id, tag_key) SELECT DISTINCT project_id, tag_key FROM ("
               f"SELECT s.project_id, j.key AS tag_key, {hour} AS hour, count(DISTINCT {value}) AS n "
               f"FROM spans s, {each} j WHERE {_counted('s')} AND {key_ok} AND {value_ok} "
               f"GROUP BY 1, 2, 3) AS per_hour WHERE n > {MAX_VALUES_PER_HOUR} ON CONFLICT DO NOTHING")
    op.execute(f"INSERT INTO usage_tag_hours ({TAGS_KEY}, {', '.join(TAG_COUNTERS)}) SELECT s.project_id, j.key, "
               f"{hour}, {value}, {tag_sums} FROM spans s, {each} j WHERE {_counted('s')} AND {key_ok} "
               f"AND {value_ok} AND NOT EXISTS (SELECT 1 FROM usage_tag_skipped k "
               f"WHERE k.project_id = s.project_id AND k.tag_key = j.key) GROUP BY 1, 2, 3, 4")


_SQLITE_TRIGGERS = ("spans_usage_insert", "spans_usage_delete", "spans_usage_update_old", "spans_usage_update_new",
                    "usage_tag_hours_new")


def _sqlite_add(x: str, sign: str) -> str:
    """Statements adding (sign '') or taking away (sign '-') span `x`'s contribution: two upserts, one
    of them over the span's tags (a value not kept goes in as SKIPPED_VALUE, see usage_tag_hours_new)."""
    hour = f"substr({x}.start_time, 1, 13)"
    statements = [
        f"INSERT INTO usage_hours ({HOURS_KEY}, {', '.join(COUNTERS)}) VALUES ({x}.project_id, {hour}, "
        f"{_name_key(f'{x}.model_used')}, {_name_key(f'{x}.function_name')}, "
        f"{', '.join(_values('sqlite', x, sign))}) ON CONFLICT ({HOURS_KEY}) DO UPDATE SET "
        f"{_sums('usage_hours', COUNTERS)};",
        f"INSERT INTO usage_tag_hours ({TAGS_KEY}, {', '.join(TAG_COUNTERS)}) SELECT {x}.project_id, j.key, {hour}, "
        f"CASE WHEN {_SQLITE_VALUE_OK} THEN j.value ELSE '{SKIPPED_VALUE}' END, "
        f"{', '.join(_values('sqlite', x, sign, tags=True))} FROM json_each({x}.tags) AS j "
        f"WHERE {_SQLITE_KEY_OK} AND {_SQLITE_HAS_VALUE} "
        f"ON CONFLICT ({TAGS_KEY}) DO UPDATE SET {_sums('usage_tag_hours', TAG_COUNTERS)};",
    ]
    if sign:
        statements.append(
            f"DELETE FROM usage_hours WHERE project_id = {x}.project_id AND hour = {hour} AND model_key = "
            f"{_name_key(f'{x}.model_used')} AND function_key = {_name_key(f'{x}.function_name')} AND calls = 0;")
        statements.append(
            f"DELETE FROM usage_tag_hours WHERE project_id = {x}.project_id AND tag_key IN "
            f"(SELECT key FROM json_each({x}.tags)) AND hour = {hour} AND calls = 0;")
    return " ".join(statements)


def _new_tag_row_dropped(new: str) -> str:
    """When a new tag row means its key is not kept: a value not kept, a key already skipped, or more
    than MAX_VALUES_PER_HOUR values in the hour (counted only on a new row: once per value and hour)."""
    return (f"{new}.tag_value = '{SKIPPED_VALUE}' OR EXISTS (SELECT 1 FROM usage_tag_skipped k WHERE "
            f"k.project_id = {new}.project_id AND k.tag_key = {new}.tag_key) OR (SELECT count(*) FROM "
            f"(SELECT 1 FROM usage_tag_hours t WHERE t.project_id = {new}.project_id AND t.tag_key = {new}.tag_key "
            f"AND t.hour = {new}.hour LIMIT {MAX_VALUES_PER_HOUR + 1}) AS v) > {MAX_VALUES_PER_HOUR}")


def _skip_key(new: str) -> str:
    return (f"INSERT INTO usage_tag_skipped (project_id, tag_key) VALUES ({new}.project_id, {new}.tag_key) "
            f"ON CONFLICT DO NOTHING; "
            f"DELETE FROM usage_tag_hours WHERE project_id = {new}.project_id AND tag_key = {new}.tag_key;")


def _sqlite() -> None:
    changed = _changed(_ROLLED, "IS NOT")
    op.execute(f"CREATE TRIGGER spans_usage_insert AFTER INSERT ON spans WHEN {_counted('new')} "
               f"BEGIN {_sqlite_add('new', '')} END")
    op.execute(f"CREATE TRIGGER spans_usage_delete AFTER DELETE ON spans WHEN {_counted('old')} "
               f"BEGIN {_sqlite_add('old', '-')} END")
    op.execute(f"CREATE TRIGGER spans_usage_update_old AFTER UPDATE ON spans WHEN {_counted('old')} AND {changed} "
               f"BEGIN {_sqlite_add('old', '-')} END")
    op.execute(f"CREATE TRIGGER spans_usage_update_new AFTER UPDATE ON spans WHEN {_counted('new')} AND {changed} "
               f"BEGIN {_sqlite_add('new', '')} END")
    # an upsert that updates fires UPDATE triggers, not INSERT ones: this runs for new rows only
    op.execute(f"CREATE TRIGGER usage_tag_hours_new AFTER INSERT ON usage_tag_hours "
               f"WHEN {_new_tag_row_dropped('new')} BEGIN {_skip_key('new')} END")


def _postgres() -> None:
    hour = "date_trunc('hour', timezone('UTC', r.start_time))"
    op.execute(f"""
        CREATE FUNCTION taskgate_usage_apply(r spans, sign integer) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
            h timestamp := {hour};
        BEGIN
            -- as 0003's trace_roots: a project's rollup rows are written by one transaction at a time, so two
            -- writers (a batch of spans, a delete) cannot lock the same rows in opposite orders and deadlock
            PERFORM pg_advisory_xact_lock(hashtext('taskgate.usage'), hashtext(r.project_id));
            INSERT INTO usage_hours ({HOURS_KEY}, {', '.join(COUNTERS)}) VALUES (r.project_id, h,
                {_name_key('r.model_used')}, {_name_key('r.function_name')},
                {', '.join(_values('postgresql', 'r', 'sign * '))})
                ON CONFLICT ({HOURS_KEY}) DO UPDATE SET {_sums('usage_hours', COUNTERS)};
            INSERT INTO usage_tag_hours ({TAGS_KEY}, {', '.join(TAG_COUNTERS)}) SELECT r.project_id, j.key, h,
                CASE WHEN {_PG_VALUE_OK} THEN j.value #>> '{{}}' ELSE '{SKIPPED_VALUE}' END,
                {', '.join(_values('postgresql', 'r', 'sign * ', tags=True))}
                FROM jsonb_each(r.tags) AS j WHERE {_PG_KEY_OK} AND {_PG_HAS_VALUE}
                ON CONFLICT ({TAGS_KEY}) DO UPDATE SET {_sums('usage_tag_hours', TAG_COUNTERS)};
            IF sign < 0 THEN
                DELETE FROM usage_hours WHERE project_id = r.project_id AND hour = h
                    AND model_key = {_name_key('r.model_used')} AND function_key = {_name_key('r.function_name')}
                    AND calls = 0;
                DELETE FROM usage_tag_hours WHERE project_id = r.project_id
                    AND tag_key IN (SELECT jsonb_object_keys(r.tags)) AND hour = h AND calls = 0;
            END IF;
        END $$""")
    op.execute("""
        CREATE FUNCTION taskgate_usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.start_time IS NOT NULL AND (OLD.cost IS NOT NULL OR OLD.total_tokens > 0) THEN
                PERFORM taskgate_usage_apply(OLD, -1);
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.start_time IS NOT NULL AND (NEW.cost IS NOT NULL OR NEW.total_tokens > 0) THEN
                PERFORM taskgate_usage_apply(NEW, 1);
            END IF;
            RETURN NULL;
        END $$""")
    op.execute(f"CREATE TRIGGER spans_usage_insert AFTER INSERT ON spans FOR EACH ROW WHEN {_counted('NEW')} "
               "EXECUTE FUNCTION taskgate_usage_rollup()")
    op.execute(f"CREATE TRIGGER spans_usage_delete AFTER DELETE ON spans FOR EACH ROW WHEN {_counted('OLD')} "
               "EXECUTE FUNCTION taskgate_usage_rollup()")
    op.execute(f"CREATE TRIGGER spans_usage_update AFTER UPDATE ON spans FOR EACH ROW "
               f"WHEN (({_counted('OLD')} OR {_counted('NEW')}) AND {_changed(_ROLLED, 'IS DISTINCT FROM')}) "
               "EXECUTE FUNCTION taskgate_usage_rollup()")
    # row triggers of an INSERT ... ON CONFLICT DO UPDATE: AFTER INSERT fires for the rows it inserted only
    op.execute(f"""
        CREATE FUNCTION taskgate_usage_tag_new() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {_new_tag_row_dropped('NEW')} THEN
                {_skip_key('NEW')}
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER usage_tag_hours_new AFTER INSERT ON usage_tag_hours FOR EACH ROW "
               "EXECUTE FUNCTION taskgate_usage_tag_new()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger in ("spans_usage_insert", "spans_usage_delete", "spans_usage_update"):
            op.execute(f"DROP TRIGGER {trigger} ON spans")
        op.execute("DROP TRIGGER usage_tag_hours_new ON usage_tag_hours")
        for function in ("taskgate_usage_rollup()", "taskgate_usage_apply(spans, integer)",
                         "taskgate_usage_tag_new()"):
            op.execute(f"DROP FUNCTION {function}")
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {trigger}")
    for table in ("usage_tag_skipped", "usage_tag_hours", "usage_hours"):
        op.drop_table(table)
