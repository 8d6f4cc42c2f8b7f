"""Hourly usage rollups kept by triggers on `spans` (issues 15 and 20: usage at 200,000 spans).

`usage_hours` sums, per (project, hour, model, function), the spans a usage report counts (with a
start, and a cost or tokens); `usage_tag_hours` the same per (project, tag key, hour, tag value).
Triggers on `spans` add a span's contribution when it is inserted, take the old one away and add
the new when a counted column changes (a span is upserted more than once: a stream opened, then
finished), and take it away when it is deleted; a row whose calls come to 0 is dropped. Every
writer, whichever process, keeps them alike, and a report served from them equals one over spans.
Values are extracted exactly as the raw report extracts them (`json_extract` / `->>`), so a group's
value is the same.

The tag rollup is bounded. A tag is rolled up only if its key is at most 100 characters without `"`
or `\\` (the keys a report may group by) and its value is a string, an integer or a boolean (on
Postgres any number) of at most 100 characters. A key seen with any other value (a long text, an
object, an array, a SQLite real: 1.0 and 1 group together there) or with more than 1,000 values in
one hour is listed in `usage_tag_skipped` for its project, from then on, and its rows are dropped:
reports grouped by it read raw spans. JSON null counts as no value, as in the raw report.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
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


def _counted(x: str) -> str:
    """The raw report's filter: the span used something (a price or tokens) and has a start."""
    return f"({x}.start_time IS NOT NULL AND ({x}.cost IS NOT NULL OR {x}.total_tokens > 0))"


def _changed(columns: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"old.{c} IS DISTINCT FROM new.{c}" for c in columns) + ")"


_ROLLED = ("project_id", "start_time", "model_used", "function_name", "cost", "total_tokens", "usage", "tags")


def _name_key(value: str) -> str:
    return f"(CASE WHEN {value} IS NULL THEN '' ELSE '=' || {value} END)"


def _sums(table: str) -> str:
    return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS)


def _counters(dialect: str) -> tuple[str, ...]:
    if dialect == "postgresql":
        def number(name: str, x: str) -> str:
            return (f"CASE WHEN jsonb_typeof({x}.usage -> '{name}') = 'number' "
                    f"THEN ({x}.usage ->> '{name}')::numeric END")
    else:
        def number(name: str, x: str) -> str:
            return f"json_extract({x}.usage, '$.{name}')"
    return tuple(f"coalesce({number(name, '{x}')}, 0)" for name in JSON_COUNTERS)


def _values(dialect: str, x: str, sign: str) -> list[str]:
    """A span's contribution in COUNTERS order, times `sign` ('' to add, '-' or 'sign * ' to take away)."""
    parts = ["1", f"coalesce({x}.cost, 0)", f"{x}.total_tokens",
             *(part.format(x=x) for part in _counters(dialect))]
    return [f"{sign}{part}" for part in parts]


# The key and value tests: `j` is a row of json_each / jsonb_each.
_SQLITE_KEY_OK = (f"length(j.key) <= {MAX_TAG_CHARS} AND instr(j.key, '\"') = 0 AND instr(j.key, '\\') = 0")
_SQLITE_VALUE_OK = f"j.type IN ('text', 'integer', 'true', 'false') AND length(j.value) <= {MAX_TAG_CHARS}"
_SQLITE_HAS_VALUE = "j.type <> 'null'"
_PG_KEY_OK = f"length(j.key) <= {MAX_TAG_CHARS} AND strpos(j.key, '\"') = 0 AND strpos(j.key, '\\') = 0"
_PG_VALUE_OK = (f"jsonb_typeof(j.value) IN ('string', 'number', 'boolean') "
                f"AND length(j.value #>> '{{}}') <= {MAX_TAG_CHARS}")
_PG_HAS_VALUE = "jsonb_typeof(j.value) <> 'null'"


def _not_skipped(p: str) -> str:
    return f"NOT EXISTS (SELECT 1 FROM usage_tag_skipped s WHERE s.project_id = {p} AND s.tag_key = j.key)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table("usage_hours", sa.Column("project_id", ID, nullable=False),
                    sa.Column("hour", HOUR, nullable=False), sa.Column("model_key", sa.Text, nullable=False),
                    sa.Column("function_key", sa.Text, nullable=False), *_counter_columns(),
                    sa.PrimaryKeyConstraint(*HOURS_KEY.split(", "), name="pk_usage_hours"), sqlite_with_rowid=False)
    op.create_table("usage_tag_hours", sa.Column("project_id", ID, nullable=False),
                    sa.Column("tag_key", sa.Text, nullable=False), sa.Column("hour", HOUR, nullable=False),
                    sa.Column("tag_value", _Blob() if dialect == "sqlite" else sa.Text, nullable=False),
                    *_counter_columns(),
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


def _counter_columns() -> list[sa.Column[object]]:
    counter = sa.BigInteger().with_variant(sa.Numeric(), "postgresql")
    return [sa.Column("calls", sa.BigInteger, nullable=False), sa.Column("cost", sa.Float, nullable=False),
            sa.Column("total_tokens", sa.BigInteger, nullable=False),
            *(sa.Column(name, counter, nullable=False) for name in JSON_COUNTERS)]


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
    columns = ", ".join(COUNTERS)
    op.execute(f"INSERT INTO usage_hours ({HOURS_KEY}, {columns}) SELECT s.project_id, {hour}, "
               f"{_name_key('s.model_used')}, {_name_key('s.function_name')}, {sums} FROM spans s "
               f"WHERE {_counted('s')} GROUP BY 1, 2, 3, 4")
    op.execute(f"INSERT INTO usage_tag_skipped (project_id, tag_key) SELECT DISTINCT s.project_id, j.key "
               f"FROM spans s, {each} j WHERE {_counted('s')} AND {key_ok} AND {has_value} AND NOT ({value_ok})")
    op.execute(f"INSERT INTO usage_tag_skipped (project_id, tag_key) SELECT DISTINCT project_id, tag_key FROM ("
               f"SELECT s.project_id, j.key AS tag_key, {hour} AS hour, count(DISTINCT {value}) AS n "
               f"FROM spans s, {each} j WHERE {_counted('s')} AND {key_ok} AND {value_ok} "
               f"GROUP BY 1, 2, 3) AS per_hour WHERE n > {MAX_VALUES_PER_HOUR} ON CONFLICT DO NOTHING")
    op.execute(f"INSERT INTO usage_tag_hours ({TAGS_KEY}, {columns}) SELECT s.project_id, j.key, {hour}, {value}, "
               f"{sums} FROM spans s, {each} j WHERE {_counted('s')} AND {key_ok} AND {value_ok} "
               f"AND {_not_skipped('s.project_id')} GROUP BY 1, 2, 3, 4")


_SQLITE_TRIGGERS = ("spans_usage_insert", "spans_usage_delete", "spans_usage_update_old", "spans_usage_update_new",
                    "usage_tag_hours_capped", "usage_tag_skipped_dropped")


def _sqlite_add(x: str, sign: str) -> str:
    """Statements adding (sign '') or taking away (sign '-') span `x`'s contribution."""
    hour = f"substr({x}.start_time, 1, 13)"
    columns = ", ".join(COUNTERS)
    values = ", ".join(_values("sqlite", x, sign))
    statements = [
        f"INSERT INTO usage_hours ({HOURS_KEY}, {columns}) VALUES ({x}.project_id, {hour}, "
        f"{_name_key(f'{x}.model_used')}, {_name_key(f'{x}.function_name')}, {values}) "
        f"ON CONFLICT ({HOURS_KEY}) DO UPDATE SET {_sums('usage_hours')};",
    ]
    if not sign:
        # upserts, not INSERT OR IGNORE: inside a trigger the outer statement's conflict policy wins
        statements.append(f"INSERT INTO usage_tag_skipped (project_id, tag_key) SELECT {x}.project_id, "
                          f"j.key FROM json_each({x}.tags) AS j WHERE {_SQLITE_KEY_OK} AND {_SQLITE_HAS_VALUE} "
                          f"AND NOT ({_SQLITE_VALUE_OK}) ON CONFLICT DO NOTHING;")
    statements.append(
        f"INSERT INTO usage_tag_hours ({TAGS_KEY}, {columns}) SELECT {x}.project_id, j.key, {hour}, j.value, "
        f"{values} FROM json_each({x}.tags) AS j WHERE {_SQLITE_KEY_OK} AND {_SQLITE_VALUE_OK} "
        f"AND {_not_skipped(f'{x}.project_id')} ON CONFLICT ({TAGS_KEY}) DO UPDATE SET {_sums('usage_tag_hours')};")
    if sign:
        statements.append(
            f"DELETE FROM usage_hours WHERE project_id = {x}.project_id AND hour = {hour} AND model_key = "
            f"{_name_key(f'{x}.model_used')} AND function_key = {_name_key(f'{x}.function_name')} AND calls = 0;")
        statements.append(
            f"DELETE FROM usage_tag_hours WHERE project_id = {x}.project_id AND tag_key IN "
            f"(SELECT key FROM json_each({x}.tags)) AND hour = {hour} AND calls = 0;")
    return " ".join(statements)


def _sqlite() -> None:
    changed = _changed(_ROLLED).replace("IS DISTINCT FROM", "IS NOT")
    op.execute(f"CREATE TRIGGER spans_usage_insert AFTER INSERT ON spans WHEN {_counted('new')} "
               f"BEGIN {_sqlite_add('new', '')} END")
    op.execute(f"CREATE TRIGGER spans_usage_delete AFTER DELETE ON spans WHEN {_counted('old')} "
               f"BEGIN {_sqlite_add('old', '-')} END")
    op.execute(f"CREATE TRIGGER spans_usage_update_old AFTER UPDATE ON spans WHEN {_counted('old')} AND {changed} "
               f"BEGIN {_sqlite_add('old', '-')} END")
    op.execute(f"CREATE TRIGGER spans_usage_update_new AFTER UPDATE ON spans WHEN {_counted('new')} AND {changed} "
               f"BEGIN {_sqlite_add('new', '')} END")
    op.execute(f"CREATE TRIGGER usage_tag_hours_capped AFTER INSERT ON usage_tag_hours WHEN (SELECT count(*) FROM "
               f"(SELECT 1 FROM usage_tag_hours WHERE project_id = new.project_id AND tag_key = new.tag_key "
               f"AND hour = new.hour LIMIT {MAX_VALUES_PER_HOUR + 1})) > {MAX_VALUES_PER_HOUR} BEGIN "
               f"INSERT INTO usage_tag_skipped (project_id, tag_key) VALUES (new.project_id, new.tag_key) "
               f"ON CONFLICT DO NOTHING; "
               f"END")
    op.execute("CREATE TRIGGER usage_tag_skipped_dropped AFTER INSERT ON usage_tag_skipped BEGIN "
               "DELETE FROM usage_tag_hours WHERE project_id = new.project_id AND tag_key = new.tag_key; END")


def _postgres() -> None:
    columns = ", ".join(COUNTERS)
    hour = "date_trunc('hour', timezone('UTC', r.start_time))"
    values = ", ".join(_values("postgresql", "r", "sign * "))
    op.execute(f"""
        CREATE FUNCTION taskgate_usage_apply(r spans, sign integer) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
            h timestamp := {hour};
        BEGIN
            INSERT INTO usage_hours ({HOURS_KEY}, {columns}) VALUES (r.project_id, h, {_name_key('r.model_used')},
                {_name_key('r.function_name')}, {values})
                ON CONFLICT ({HOURS_KEY}) DO UPDATE SET {_sums('usage_hours')};
            IF sign > 0 THEN
                INSERT INTO usage_tag_skipped (project_id, tag_key) SELECT r.project_id, j.key
                    FROM jsonb_each(r.tags) AS j WHERE {_PG_KEY_OK} AND {_PG_HAS_VALUE} AND NOT ({_PG_VALUE_OK})
                    ON CONFLICT DO NOTHING;
            END IF;
            INSERT INTO usage_tag_hours ({TAGS_KEY}, {columns}) SELECT r.project_id, j.key, h, j.value #>> '{{}}',
                {values}
                FROM jsonb_each(r.tags) AS j WHERE {_PG_KEY_OK} AND {_PG_VALUE_OK} AND {_not_skipped('r.project_id')}
                ON CONFLICT ({TAGS_KEY}) DO UPDATE SET {_sums('usage_tag_hours')};
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
               f"WHEN (({_counted('OLD')} OR {_counted('NEW')}) AND {_changed(_ROLLED)}) "
               "EXECUTE FUNCTION taskgate_usage_rollup()")
    op.execute(f"""
        CREATE FUNCTION taskgate_usage_tag_cap() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT count(*) FROM (SELECT 1 FROM usage_tag_hours WHERE project_id = NEW.project_id
                    AND tag_key = NEW.tag_key AND hour = NEW.hour LIMIT {MAX_VALUES_PER_HOUR + 1}) AS v)
                    > {MAX_VALUES_PER_HOUR} THEN
                INSERT INTO usage_tag_skipped (project_id, tag_key) VALUES (NEW.project_id, NEW.tag_key)
                    ON CONFLICT DO NOTHING;
                DELETE FROM usage_tag_hours WHERE project_id = NEW.project_id AND tag_key = NEW.tag_key;
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER usage_tag_hours_capped AFTER INSERT ON usage_tag_hours FOR EACH ROW "
               "EXECUTE FUNCTION taskgate_usage_tag_cap()")
    # a key listed by a span's own write (a long value) drops its rows too
    op.execute("""
        CREATE FUNCTION taskgate_usage_tag_skipped() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM usage_tag_hours WHERE project_id = NEW.project_id AND tag_key = NEW.tag_key;
            RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER usage_tag_skipped_dropped AFTER INSERT ON usage_tag_skipped FOR EACH ROW "
               "EXECUTE FUNCTION taskgate_usage_tag_skipped()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger in ("spans_usage_insert", "spans_usage_delete", "spans_usage_update"):
            op.execute(f"DROP TRIGGER {trigger} ON spans")
        op.execute("DROP TRIGGER usage_tag_hours_capped ON usage_tag_hours")
        op.execute("DROP TRIGGER usage_tag_skipped_dropped ON usage_tag_skipped")
        for function in ("taskgate_usage_rollup()", "taskgate_usage_apply(spans, integer)",
                         "taskgate_usage_tag_cap()", "taskgate_usage_tag_skipped()"):
            op.execute(f"DROP FUNCTION {function}")
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {trigger}")
    for table in ("usage_tag_skipped", "usage_tag_hours", "usage_hours"):
        op.drop_table(table)
