"""The schema as SQLAlchemy Core tables: one definition serves SQLite and Postgres.

The migrations under `migrations/versions` create exactly these tables; the queries use these
objects. Every row that belongs to a tenant carries `project_id`, so a query can always scope by it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.engine import Dialect

from taskgate.store.codec import json_dumps


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out. SQLite keeps no zone, so values are normalised to UTC on the
    way in (naive ones are taken as UTC) and tagged UTC on the way out; string order stays time order."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(sa.TypeDecorator[Any]):
    """JSON as TEXT for SQLite. A column declared `JSON` there gets numeric affinity, which turns
    the stored text `1` into the integer 1 behind the JSON layer's back; TEXT keeps it verbatim."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json_dumps(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else orjson.loads(value)


# JSONB on Postgres (indexable, compact); JSON text on SQLite.
JSONType = JSONText().with_variant(JSONB(), "postgresql")
# What callers wrote (definitions with their schemas, inputs, answers) must read back as written:
# property order is part of a schema's meaning, and an answer's keys come in its schema's order.
# Postgres `jsonb` reorders object keys; `json` keeps the text. None of these is queried inside.
JSONAsWritten = JSONText().with_variant(JSON(), "postgresql")
UUID_LEN = 36

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _project_fk() -> sa.Column[str]:
    return sa.Column("project_id", sa.String(UUID_LEN), sa.ForeignKey("projects.id", ondelete="CASCADE"),
                     nullable=False)


def _limit_columns() -> list[sa.Column[Any]]:
    """A key's or a project's limits (engine/quotas/rules.py `Quota`); a null is no limit."""
    return [
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.BigInteger, nullable=True),
        sa.Column("budget_usd", sa.Float, nullable=True),
        sa.Column("budget_period", sa.String(8), nullable=True),  # "day" or "month"
        sa.Column("models", JSONText, nullable=True),  # allowed model globs; null: any model
    ]


projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    *_limit_columns(),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    _project_fk(),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    *_limit_columns(),
)

# What each key and project used, per UTC day and month (`period_key`: "day:2026-12-03",
# "month:2026-12"), added to by every replica: the budgets' spend that survives restarts.
usage_totals = sa.Table(
    "usage_totals", metadata,
    sa.Column("subject", sa.String(80), nullable=False),  # "key:<id>" or "project:<id>"
    sa.Column("period_key", sa.String(20), nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_nano_usd", sa.BigInteger, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("subject", "period_key"),
)

functions = sa.Table(
    "functions", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    _project_fk(),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("current_revision_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("revision_number", sa.Integer, nullable=False),
    sa.Column("schema_hash", sa.String(64), nullable=False),
    sa.Column("hit_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("few_shot_count", sa.Integer, nullable=False, server_default="3"),
    sa.Column("dataset_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
)
# Unique among live functions only, so a soft-deleted name can be created again.
LIVE_FUNCTION_NAME = sa.Index(
    "uq_functions_live_name", functions.c.project_id, functions.c.name, unique=True,
    sqlite_where=functions.c.deleted_at.is_(None), postgresql_where=functions.c.deleted_at.is_(None),
)

function_revisions = sa.Table(
    "function_revisions", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    sa.Column("function_id", sa.String(UUID_LEN), sa.ForeignKey("functions.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("definition", JSONAsWritten, nullable=False),
    sa.Column("schema_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("function_id", "number"),
)

examples = sa.Table(
    "examples", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    _project_fk(),
    sa.Column("function_id", sa.String(UUID_LEN), sa.ForeignKey("functions.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("input", JSONAsWritten, nullable=True),
    sa.Column("output", JSONAsWritten, nullable=True),
    sa.Column("search_text", sa.Text, nullable=False),  # the input's words, indexed for full-text search
    sa.Column("tag", sa.String(100), nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index(None, "project_id", "function_id", "created_at"),
)

# No foreign key to projects here: a span batch is written in one statement, and one span with a
# stale project id would make the whole batch fail. Spans are only ever read by project id anyway.
spans = sa.Table(
    "spans", metadata,
    sa.Column("project_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("trace_id", sa.Text, nullable=False),
    sa.Column("parent_id", sa.Text, nullable=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("start_time", UTCDateTime(), nullable=True),
    sa.Column("end_time", UTCDateTime(), nullable=True),
    sa.Column("input", JSONAsWritten, nullable=True),
    sa.Column("output", JSONAsWritten, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("model_chain", JSONType, nullable=False),
    sa.Column("model_used", sa.Text, nullable=True),
    sa.Column("models_failed", JSONType, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("usage", JSONType, nullable=False),
    sa.Column("total_tokens", sa.Integer, nullable=False),  # from `usage`, kept apart so traces can sum it
    sa.Column("cost", sa.Float, nullable=True),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("meta", JSONType, nullable=False),
    sa.Column("function_name", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("project_id", "id"),  # client-chosen ids must not collide across projects
    sa.Index(None, "project_id", "trace_id"),
    # (project_id, start_time) first, as every time-range read wants; the rest lets a usage report
    # by time, model or function be answered from this index alone (see store/analytics.py)
    sa.Index("ix_spans_usage", "project_id", "start_time", "model_used", "function_name", "cost", "total_tokens"),
)

cache_entries = sa.Table(
    "cache_entries", metadata,
    _project_fk(),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("project_id", "key"),
    sa.Index(None, "expires_at"),
)

# ---- datasets (issue 15, migration 0002): an entry is an example row, with these besides
examples.append_column(sa.Column("expected", JSONAsWritten, nullable=True))  # an edited version of the output
examples.append_column(sa.Column("embedding", JSONType, nullable=True))  # the input's vector, for semantic search
examples.append_column(sa.Column("embedding_model", sa.Text, nullable=True))  # the model that made it
FUNCTION_DATASET = sa.Index("ix_functions_project_id_dataset_id", functions.c.project_id, functions.c.dataset_id)
# The spans that did not succeed, by time (migration 0010): the UI's status filter walks only them. Partial,
# so the spans that succeed (nearly all) cost no index entry to write. A query uses it by holding the same
# term, `status <> 'ok'` (store/trace_search.py): neither database proves `status = 'error'` implies it.
UNSUCCESSFUL_SPANS = sa.Index("ix_spans_unsuccessful", spans.c.project_id, spans.c.start_time,
                              sqlite_where=spans.c.status != "ok", postgresql_where=spans.c.status != "ok")

# ---- custom models and model aliases (issue 15): both named per project, names unique per project.
custom_models = sa.Table(
    "custom_models", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    _project_fk(),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("identifier", sa.String(300), nullable=False),
    sa.Column("extra", JSONType, nullable=False),
    sa.Column("api_key_sealed", sa.Text, nullable=True),  # Fernet token (engine/secret_box.py), never the key
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

model_aliases = sa.Table(
    "model_aliases", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    _project_fk(),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("fallback_models", JSONType, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

# ---- what is said about a span after it ran (issue 15): feedback, metrics and events, one row each.
# `origin` says which API made a row, so each reads back only its own: a v2 metric (`metric`), the
# v2 feedback (`feedback`, one per span) or a v3 event (`event`). All three are events to v3 readers.
span_events = sa.Table(
    "span_events", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    _project_fk(),
    sa.Column("span_id", sa.Text, nullable=False),
    sa.Column("trace_id", sa.Text, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index(None, "project_id", "span_id", "origin", "created_at"),
    sa.Index(None, "project_id", "trace_id", "created_at"),
)
# Traces as listings read them, one row per trace that has a root span (one without a parent),
# with its earliest root and that root's start, and each project's count of them: database triggers on `spans`
# keep both (migrations 0003 and 0006), whichever writer writes, so a listing pages this table's index and
# reads its total from one row, never going over all spans.
trace_roots = sa.Table(
    "trace_roots", metadata,
    sa.Column("project_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("trace_id", sa.Text, nullable=False),
    sa.Column("root_id", sa.Text, nullable=False),  # the earliest root span: by start, then id
    sa.Column("start_time", UTCDateTime(), nullable=True),
    sa.Column("name", sa.Text, nullable=True),  # the trace's name: its earliest root's (migration 0006)
    sa.PrimaryKeyConstraint("project_id", "trace_id"),
    sa.Index(None, "project_id", "start_time", "trace_id"),
    sa.Index(None, "project_id", "name", "start_time", "trace_id"),
)
trace_counts = sa.Table(
    "trace_counts", metadata,
    sa.Column("project_id", sa.String(UUID_LEN), primary_key=True),
    sa.Column("traces", sa.Integer, nullable=False),
)
# Each project's distinct trace names and how many traces carry each (kept by the same triggers): a
# name filter, a substring no index serves, is matched against these few rows instead of every root.
trace_names = sa.Table(
    "trace_names", metadata,
    sa.Column("project_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("traces", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("project_id", "name"),
    sqlite_with_rowid=False,
)

# Raw provider exchanges (v3 generations). Like spans, no foreign key: they are written in batches
# off the request path, and one row of a stale project must not sink its batch.
generations = sa.Table(
    "generations", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    sa.Column("project_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("span_id", sa.Text, nullable=True),
    sa.Column("trace_id", sa.Text, nullable=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=True),
    sa.Column("request_truncated", sa.Boolean, nullable=False),
    sa.Column("response_truncated", sa.Boolean, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index(None, "project_id", "created_at"),
)

# ---- knowledge bases (issue 18, migration 0008): documents cut into chunks, each with its vector.
knowledge_bases = sa.Table(
    "knowledge_bases", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    _project_fk(),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("embedding_model", sa.String(300), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),  # bumped by every change of its chunks
    # the `version` its chunks' rows in the vector index (sqlite-vec, pgvector) match; NULL: never indexed
    sa.Column("vector_version", sa.Integer, nullable=True),
    sa.UniqueConstraint("project_id", "name"),
)

knowledge_documents = sa.Table(
    "knowledge_documents", metadata,
    sa.Column("id", sa.String(UUID_LEN), primary_key=True),
    sa.Column("knowledge_base_id", sa.String(UUID_LEN), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("key", sa.String(1000), nullable=False),
    sa.Column("metadata", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("knowledge_base_id", "key"),
)

knowledge_chunks = sa.Table(
    "knowledge_chunks", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # SQLite: the rowid, FTS5's rowid too
    sa.Column("knowledge_base_id", sa.String(UUID_LEN), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("document_id", sa.String(UUID_LEN), sa.ForeignKey("knowledge_documents.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),  # little-endian float32, unit length
    sa.Index(None, "knowledge_base_id"),
    sa.Index(None, "document_id", "position"),
)

# ---- knowledge files (migration 0009): uploaded files' bytes and their ingestion's state.
knowledge_files = sa.Table(
    "knowledge_files", metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),  # the wire's integer document_id
    sa.Column("id", sa.String(UUID_LEN), nullable=False, unique=True),
    sa.Column("knowledge_base_id", sa.String(UUID_LEN), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("original_filename", sa.String(300), nullable=False),
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=True),  # None until uploaded
    sa.Column("status", sa.String(20), nullable=False),  # reserved, pending, processing, completed, failed
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("metadata", JSONType, nullable=False),
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("chunk_overlap", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index(None, "knowledge_base_id"),
)


class _AnyValue(sa.types.UserDefinedType[Any]):
    """SQLite's BLOB affinity: each value is kept as the storage class it came in (a tag's integer as an
    integer, its text as text), exactly as `json_extract` gives it to a GROUP BY over raw spans."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "BLOB"


# Usage per hour, kept exact by triggers on `spans` (migration 0014; see taskgate/store/usage_rollup.py).
# Only the spans a usage report counts are in them: with a start, and a cost or tokens. The hour is
# SQLite's start-time text cut to "YYYY-MM-DD HH" (a usage bucket is a prefix of it), on Postgres
# the UTC time truncated to the hour. Model and function are keys that cannot be NULL: '' for none,
# '=' and the name otherwise (a primary key column cannot hold NULL, and '' is a name too).
USAGE_HOUR = sa.Text().with_variant(sa.DateTime(timezone=False), "postgresql")
USAGE_JSON_COUNTERS = ("input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens", "cache_write_tokens")
# JSON counters are summed as Postgres numerics (as the raw query sums them), exact whatever they hold.
_USAGE_COUNTER = sa.BigInteger().with_variant(sa.Numeric(), "postgresql")


USAGE_TAG_COUNTERS = ("calls", "cost", "total_tokens")  # a tag row's: see migration 0014 on why no more


def _usage_counters(json_counters: bool = True) -> list[sa.Column[Any]]:
    return [sa.Column("calls", sa.BigInteger, nullable=False), sa.Column("cost", sa.Float, nullable=False),
            sa.Column("total_tokens", sa.BigInteger, nullable=False),
            *(sa.Column(name, _USAGE_COUNTER, nullable=False) for name in USAGE_JSON_COUNTERS if json_counters)]


usage_hours = sa.Table(
    "usage_hours", metadata,
    sa.Column("project_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("hour", USAGE_HOUR, nullable=False),
    sa.Column("model_key", sa.Text, nullable=False),
    sa.Column("function_key", sa.Text, nullable=False),
    *_usage_counters(),
    sa.PrimaryKeyConstraint("project_id", "hour", "model_key", "function_key"),
    sqlite_with_rowid=False,
)
# Per hour and tag value. Bounded (see migration 0014): a key whose values are too long, not scalars,
# or too many in one hour is listed in `usage_tag_skipped` instead, and reports on it read raw spans.
usage_tag_hours = sa.Table(
    "usage_tag_hours", metadata,
    sa.Column("project_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("tag_key", sa.Text, nullable=False),
    sa.Column("hour", USAGE_HOUR, nullable=False),
    sa.Column("tag_value", sa.Text().with_variant(_AnyValue(), "sqlite"), nullable=False),
    *_usage_counters(json_counters=False),
    sa.PrimaryKeyConstraint("project_id", "tag_key", "hour", "tag_value"),
    sqlite_with_rowid=False,
)
usage_tag_skipped = sa.Table(
    "usage_tag_skipped", metadata,
    sa.Column("project_id", sa.String(UUID_LEN), nullable=False),
    sa.Column("tag_key", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("project_id", "tag_key"),
    sqlite_with_rowid=False,
)

# ---- UI sessions (migration 0013): one row per signed-in browser, so that a sign-out or a revoked
# key ends the session on every process at once (see taskgate.store.ui_sessions: a page's read joins the key).
ui_sessions = sa.Table(
    "ui_sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # sha256 of the cookie's nonce, never the nonce
    _project_fk(),
    # The key it was opened with; NULL for a key configured in TASKGATE_API_KEYS (never stored).
    sa.Column("api_key_id", sa.String(UUID_LEN), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Index("ix_ui_sessions_expires_at", "expires_at"),
    sa.Index("ix_ui_sessions_api_key_id", "api_key_id"),
)
