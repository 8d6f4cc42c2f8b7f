"""What the rest of Taskgate needs from persistence. SQLite and Postgres implement it with one schema.

Every method is async: the SQL implementation runs its blocking driver calls in a small thread
pool so the event loop never waits on disk. Every read and write is scoped to a project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np


from taskgate.store.key_records import KeyRecord, StoredLimits, UsageDelta, UsageTotals
from taskgate.store.knowledge_records import ChunkHit, DocumentRecord, FileRecord, KnowledgeBaseRecord, NewChunk


@dataclass(slots=True)
class FunctionDefinition:
    """The versioned part of a function: any change makes a new revision."""

    instructions: str
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    model: Any = None  # the TModel as given (str | dict | list) or None
    configuration: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    source: str | None = None  # v3 "script" text; we store the prompt template here


@dataclass(slots=True)
class FunctionRecord:
    id: str  # uuid
    project_id: str
    name: str
    definition: FunctionDefinition
    revision_id: str  # uuid of the current revision (v2)
    revision_number: int  # 1-based integer revision (v3)
    schema_hash: str
    created_at: datetime
    updated_at: datetime
    hit_count: int = 0
    few_shot_count: int = 3
    dataset_id: str = ""  # uuid of the function's own dataset (its examples), fixed at creation


@dataclass(slots=True)
class RevisionRecord:
    id: str  # uuid
    function_id: str
    number: int
    definition: FunctionDefinition
    schema_hash: str
    created_at: datetime
    is_current: bool


@dataclass(slots=True)
class ExampleRecord:
    id: str  # uuid
    function_id: str
    input: Any
    output: Any
    tag: str | None = None
    comment: str | None = None
    created_at: datetime | None = None
    expected: Any = None  # v2 dataset entries: an edited version of the output


@dataclass(slots=True)
class SpanRecord:
    id: str
    trace_id: str
    project_id: str
    name: str
    type: str = "call"
    parent_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    status: str = "ok"  # ok | error | cancelled
    model_chain: list[str] = field(default_factory=list)
    model_used: str | None = None
    models_failed: list[str] = field(default_factory=list)
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    function_name: str | None = None


@dataclass(slots=True)
class TraceSummary:
    id: str
    name: str | None
    span_count: int
    start_time: datetime | None
    end_time: datetime | None
    status: str
    input: Any = None
    output: Any = None
    total_tokens: int = 0
    cost: float | None = None  # the spans' summed cost (None: none had a price); only find_traces sums it


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """Which traces a listing keeps: those with a span of this function, model, tag value and status,
    started in [since, until). Every field is optional; the engine bounds their lengths."""

    function: str | None = None
    model: str | None = None
    tag: tuple[str, str] | None = None  # key, value
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def by_span(self) -> bool:
        """Whether spans must be read to decide (the time range alone is the trace roots' own)."""
        return any(value is not None for value in (self.function, self.model, self.tag, self.status))


@dataclass(slots=True)
class CustomModelRecord:
    """A project's own OpenAI-compatible endpoint, called by `name`."""

    id: str
    project_id: str
    name: str
    identifier: str  # the model id the endpoint is asked for
    extra: dict[str, Any]  # api_base, api_version
    api_key_sealed: str | None  # encrypted (engine/secret_box.py); None when the endpoint needs no key
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class ModelAliasRecord:
    """A project's name for a fallback chain."""

    id: str
    project_id: str
    name: str
    fallback_models: list[str]
    description: str | None
    created_at: datetime
    updated_at: datetime


ModelNameKind = Literal["custom_model", "model_alias"]
ModelNameRecord = CustomModelRecord | ModelAliasRecord


@dataclass(slots=True)
class SpanEvent:
    """Something said about a span after it ran: a v2 metric or feedback, or a v3 event.
    `origin` is the API that made it ("metric", "feedback" or "event"): each reads back its own."""

    id: str
    span_id: str
    trace_id: str
    origin: str
    kind: str  # guardrail | feedback | evaluation
    source: str
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which of a project's span events to read: of one span or one trace, of one origin or kind."""

    span_id: str | None = None
    trace_id: str | None = None
    origin: str | None = None
    kind: str | None = None
@dataclass(frozen=True, slots=True)
class UsageQuery:
    """One usage report, already checked by the engine (`taskgate.engine.analytics`): spans that
    started in [start, end), summed per `granularity` bucket and per value of each `group_by` key."""

    start: datetime
    end: datetime  # exclusive
    granularity: str  # one of USAGE_GRANULARITIES
    group_by: tuple[str, ...] = ()  # "model", "function", or a tag key
    fields: tuple[str, ...] = ()  # counters of USAGE_FIELDS summed beyond the tokens
    max_rows: int = 10_000  # the store answers at most this many plus one, so overflow can be told


USAGE_GRANULARITIES = ("minute", "hour", "day", "month", "year")
USAGE_TOKENS = ("total_tokens",)  # always in a report (with the cost): both are read from an index alone
USAGE_FIELDS = (*USAGE_TOKENS, "input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens",
                "cache_write_tokens", "calls")
GROUP_BY_MODEL = "model"
GROUP_BY_FUNCTION = "function"


@dataclass(slots=True)
class UsageRow:
    time_bucket: datetime  # the bucket's start, UTC
    groups: dict[str, str | None]  # group_by key -> its value (None: spans without one)
    cost: float  # USD; spans whose price is unknown add nothing
    counters: dict[str, int]  # USAGE_TOKENS plus the query's fields


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """A function's calls over a time range: how many, how many failed, and their summed cost."""

    calls: int
    errors: int
    cost: float | None  # None: no call had a price


@dataclass(slots=True)
class GenerationRecord:
    """One raw provider exchange of a call (v3 `/v3/generations`): the body sent and the body (or
    the stream's events) received, each as JSON text cut at a bound (`*_truncated` then says so)."""

    id: str  # uuid
    project_id: str
    span_id: str | None
    trace_id: str | None
    provider: str
    model: str | None
    path: str  # the upstream path, e.g. /chat/completions (the base URL is configuration)
    stream: bool
    status_code: int | None
    error: str | None
    request: str
    response: str | None
    request_truncated: bool
    response_truncated: bool
    duration_ms: int
    created_at: datetime


class KnowledgeStore(Protocol):
    """Knowledge bases, their documents and chunks, and the chunks' search (store/knowledge.py: one
    interface, its search implemented for SQLite and for Postgres)."""

    async def create_base(self, project_id: str, name: str, embedding_model: str) -> KnowledgeBaseRecord:
        """ConflictError when the project has a knowledge base of that name."""
        ...
    async def get_base(self, project_id: str, *, base_id: str | None = None,
                       name: str | None = None) -> KnowledgeBaseRecord | None:
        """By id or by name, with its document count."""
        ...
    async def list_bases(self, project_id: str, limit: int, offset: int) -> tuple[list[KnowledgeBaseRecord], int]: ...
    async def delete_base(self, project_id: str, base_id: str) -> bool: ...
    async def put_document(self, base_id: str, key: str, metadata: dict[str, Any],
                           new_chunks: list[NewChunk]) -> str:
        """Store the document under `key`, replacing the one that had it; its id. NotFoundError
        when the base is gone."""
        ...
    async def get_document(self, base_id: str, key: str) -> DocumentRecord | None: ...
    async def document_metadata(self, base_id: str) -> list[tuple[str, dict[str, Any]]]: ...
    async def list_documents(self, base_id: str, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """(key, metadata) of up to `limit` documents by key, after `after` when given."""
        ...
    async def delete_documents(self, base_id: str, document_ids: list[str] | None) -> int:
        """These documents (every one with None) and their chunks; how many went."""
        ...
    async def ranked(self, base_id: str, vector: np.ndarray | None, terms: list[str],
                     limit: int) -> tuple[list[int], list[int]]:
        """The `limit` best chunk ids by cosine similarity to the unit `vector` and by full text."""
        ...
    async def chunk_hits(self, base_id: str, chunk_ids: list[int]) -> list[ChunkHit]:
        """The chunks with these ids, in that order, with their documents' keys and metadata."""
        ...


class KnowledgeFileStore(Protocol):
    """Files uploaded to knowledge bases: their bytes and ingestion state (store/knowledge_files.py)."""

    async def add_file(self, base_id: str, file_id: str, filename: str, content_type: str, content: bytes | None,
                       metadata: dict[str, Any], chunk_size: int, chunk_overlap: int) -> FileRecord:
        """A reserved file (not listed) when `content` is None, else a pending one."""
        ...
    async def put_content(self, base_id: str, file_id: str, content: bytes) -> bool:
        """The bytes of a reserved file; False when the base has no such reserved file."""
        ...
    async def register(self, base_id: str, file_id: str, filename: str, content_type: str, metadata: dict[str, Any],
                       chunk_size: int, chunk_overlap: int) -> FileRecord | None:
        """Reserved and uploaded → pending; None when unknown, ConflictError when registered already."""
        ...
    async def get_file(self, base_id: str, file_id: str) -> FileRecord | None: ...
    async def content_of(self, base_id: str, file_id: str) -> tuple[FileRecord, bytes] | None: ...
    async def list_files(self, base_id: str, limit: int, offset: int) -> tuple[list[FileRecord], int]: ...
    async def set_status(self, file_id: str, status: str, error: str | None) -> bool:
        """False when the file is gone."""
        ...
    async def delete_file(self, base_id: str, file_id: str) -> bool:
        """The file, its document and the document's chunks; whether the file was there."""
        ...
    async def unfinished(self) -> list[tuple[str, FileRecord]]:
        """(project id, file) of the registered files whose ingestion has not ended."""
        ...


class KeyStore(Protocol):
    """API keys with their limits, projects' limits and usage totals (`store.keys`)."""

    async def create(self, project_id: str, name: str | None, admin: bool,
                     limits: Mapping[str, Any]) -> tuple[KeyRecord, str]: ...
    async def grant(self, digest: str) -> tuple[KeyRecord, StoredLimits] | None: ...
    async def list(self, project_id: str, include_revoked: bool) -> list[KeyRecord]: ...
    async def get(self, project_id: str, key_id: str) -> KeyRecord | None: ...
    async def update(self, project_id: str, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None: ...
    async def revoke(self, project_id: str, key_id: str) -> KeyRecord | None: ...
    async def project_id(self, name: str) -> str | None: ...
    async def ensure_project(self, name: str) -> str: ...
    async def project_limits(self, project_id: str) -> StoredLimits: ...
    async def set_project_limits(self, project_id: str, changes: Mapping[str, Any]) -> StoredLimits: ...
    async def add_usage(self, deltas: Sequence[UsageDelta]) -> None: ...
    async def usage(self, subjects: Iterable[str],
                    period_keys: Iterable[str]) -> dict[tuple[str, str], UsageTotals]: ...


class Store(Protocol):
    @property
    def knowledge(self) -> KnowledgeStore: ...
    @property
    def knowledge_files(self) -> KnowledgeFileStore: ...
    @property
    def keys(self) -> KeyStore: ...

    # ---- projects and keys
    async def ensure_project(self, name: str) -> str: ...
    async def create_api_key(self, project_name: str) -> str:
        """Make a new key, store only its sha256, and return the plaintext once."""
        ...
    async def project_for_key_hash(self, key_hash: str) -> str | None: ...
    async def project_name(self, project_id: str) -> str | None: ...

    # ---- UI sessions (taskgate.store.ui_sessions): rows, so every process sees a sign-out or a revoke
    async def open_ui_session(self, session_id: str, key_digest: str, expires_at: datetime,
                              configured_project_id: str | None) -> str | None:
        """Record a session of the key with this sha256 (stored, or configured for that project);
        the project it opens, or None when the key is not valid (any more). Prunes expired sessions."""
        ...
    async def ui_session_owner(self, session_id: str) -> tuple[str, bool] | None:
        """(project id, opened with a configured key) of an unexpired session; None when it is gone."""
        ...
    async def close_ui_session(self, session_id: str) -> None: ...

    # ---- functions and revisions
    async def upsert_function(self, project_id: str, name: str, definition: FunctionDefinition) -> FunctionRecord:
        """Create the function, or add a revision when `definition` differs from the current one."""
        ...
    async def get_function(self, project_id: str, name: str) -> FunctionRecord | None: ...
    async def list_functions(self, project_id: str, limit: int = 100, offset: int = 0) -> list[FunctionRecord]: ...
    async def delete_function(self, project_id: str, name: str) -> bool: ...
    async def list_revisions(self, project_id: str, name: str) -> list[RevisionRecord]: ...
    async def get_revision(self, project_id: str, name: str, number: int) -> RevisionRecord | None: ...
    async def revert_function(self, project_id: str, name: str, number: int) -> FunctionRecord | None:
        """Make a new revision whose definition is that of revision `number`."""
        ...
    async def record_function_hits(self, project_id: str, name: str, count: int) -> None: ...
    async def set_few_shot_count(self, project_id: str, name: str, count: int) -> None: ...

    # ---- examples (few-shot)
    async def add_examples(
        self, project_id: str, function_id: str, examples: list[ExampleRecord]
    ) -> list[ExampleRecord]: ...
    async def list_examples(self, project_id: str, function_id: str, limit: int = 50, offset: int = 0,
                            tag: str | None = None) -> list[ExampleRecord]: ...
    async def delete_example(self, project_id: str, function_id: str, example_id: str) -> bool: ...
    async def search_examples(self, project_id: str, function_id: str, query: str, limit: int) -> list[ExampleRecord]:
        """The `limit` examples whose input best matches `query` (BM25 on SQLite FTS5, ts_rank on Postgres)."""
        ...

    # ---- spans and traces
    async def write_spans(self, spans: list[SpanRecord], *, background: bool = False) -> None:
        """Insert or replace a batch of spans in one transaction; `background` when no request
        waits for it, so it may yield the CPU to those that do."""
        ...
    async def get_span(self, project_id: str, span_id: str) -> SpanRecord | None: ...
    async def delete_span(self, project_id: str, span_id: str) -> bool: ...
    async def list_traces(self, project_id: str, name: str | None = None, limit: int = 100,
                          offset: int = 0) -> tuple[list[TraceSummary], int]: ...
    async def get_trace(self, project_id: str, trace_id: str) -> list[SpanRecord]: ...
    async def find_traces(self, project_id: str, which: TraceFilter, before: datetime | None,
                          limit: int) -> tuple[list[TraceSummary], datetime | None]:
        """Up to `limit` traces newest first, that started before `before` when given, and the
        `before` of the next page (None when this is the last)."""
        ...
    async def delete_trace(self, project_id: str, trace_id: str) -> bool: ...

    # ---- result cache
    async def cache_get(self, project_id: str, key: str) -> dict[str, Any] | None:
        """The stored payload, or None when absent or expired."""
        ...
    async def cache_put(self, project_id: str, key: str, payload: dict[str, Any], ttl_seconds: int) -> None: ...

    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise unless the database answers a trivial query (health checks)."""
        ...

    # ---- v2 functions by id, and their datasets (entries are examples)
    async def get_function_by_id(self, project_id: str, function_id: str) -> FunctionRecord | None: ...
    async def get_function_by_dataset(self, project_id: str, dataset_id: str) -> FunctionRecord | None: ...
    async def list_functions_page(self, project_id: str, name: str | None, sort: str, limit: int,
                                  offset: int) -> tuple[list[FunctionRecord], int]:
        """Live functions whose name contains `name` (any case), sorted by `name` or `created_at`
        (`-` first: descending), and how many match in all."""
        ...
    async def create_function(self, project_id: str, name: str, definition: FunctionDefinition,
                              few_shot_count: int) -> FunctionRecord:
        """ConflictError when a live function has the name."""
        ...
    async def update_function(self, project_id: str, function_id: str, name: str, definition: FunctionDefinition,
                              few_shot_count: int) -> FunctionRecord | None:
        """Rename (ConflictError when taken) and add a revision when the definition changed."""
        ...
    async def list_revisions_page(self, project_id: str, function_id: str, limit: int,
                                  offset: int) -> tuple[list[RevisionRecord], int] | None:
        """Newest first; None when there is no such function."""
        ...
    async def get_revision_by_id(self, project_id: str, function_id: str,
                                 revision_id: str) -> RevisionRecord | None: ...
    async def get_example(self, project_id: str, function_id: str, example_id: str) -> ExampleRecord | None: ...
    async def count_examples(self, project_id: str, function_id: str) -> int: ...
    async def update_example(self, project_id: str, function_id: str, example_id: str,
                             changes: dict[str, Any]) -> ExampleRecord | None:
        """Set `input`, `output`, `expected` or `comment`; a new input drops the old vector."""
        ...
    async def set_example_embeddings(self, project_id: str, vectors: list[tuple[str, list[float]]],
                                     model: str) -> None:
        """Store each (example id, vector) with the model that made it."""
        ...
    async def embedded_examples(self, project_id: str, function_id: str, model: str,
                                limit: int) -> list[tuple[str, list[float]]]:
        """(id, vector) of the newest `limit` examples embedded with `model`."""
        ...
    async def examples_by_ids(self, project_id: str, function_id: str, ids: list[str]) -> list[ExampleRecord]: ...
    # ---- model names: custom models and aliases, one name space per project
    async def create_model_name(self, kind: ModelNameKind, project_id: str,
                                values: dict[str, Any]) -> ModelNameRecord:
        """ConflictError when a custom model or an alias of the project already has the name."""
        ...
    async def get_model_name(self, kind: ModelNameKind, project_id: str, *, id: str | None = None,
                             name: str | None = None) -> ModelNameRecord | None: ...
    async def list_model_names(self, kind: ModelNameKind, project_id: str, limit: int,
                               offset: int) -> tuple[list[ModelNameRecord], int]: ...
    async def update_model_name(self, kind: ModelNameKind, project_id: str, id: str,
                                changes: dict[str, Any]) -> ModelNameRecord | None:
        """None when there is no such object; ConflictError when a new name is taken."""
        ...
    async def delete_model_name(self, kind: ModelNameKind, project_id: str, id: str) -> bool: ...
    async def all_model_names(self, project_id: str) -> tuple[list[CustomModelRecord], list[ModelAliasRecord]]:
        """Every custom model and alias of the project: what resolution looks names up in."""
        ...
    # ---- span events (v2 metrics and feedback, v3 events)
    async def add_span_event(self, project_id: str, event: SpanEvent, *, replace: bool = False) -> SpanEvent:
        """Store `event`; with `replace`, the span's earlier events of the same origin go in the
        same transaction (feedback: the latest replaces the one before)."""
        ...
    async def list_span_events(self, project_id: str, which: EventFilter, limit: int | None = 100,
                               offset: int = 0) -> tuple[list[SpanEvent], int]:
        """Oldest first, one page (every one with `limit` None), and how many match in all."""
        ...
    async def get_span_event(self, project_id: str, span_id: str, origin: str, event_id: str) -> SpanEvent | None: ...
    async def update_span_event(self, project_id: str, span_id: str, origin: str, event_id: str,
                                data: dict[str, Any]) -> SpanEvent | None: ...
    async def delete_span_event(self, project_id: str, span_id: str, origin: str, event_id: str) -> bool: ...
    async def trace_exists(self, project_id: str, trace_id: str) -> bool: ...
    # ---- analytics
    async def usage_report(self, project_id: str, query: UsageQuery) -> list[UsageRow]:
        """Cost and token sums per time bucket and group, aggregated by the database."""
        ...

    # ---- generations (raw provider exchanges)
    async def function_stats(self, project_id: str, names: list[str], since: datetime) -> dict[str, FunctionStats]:
        """Per function name, its spans' calls, errors and cost since `since` (names without spans are absent)."""
        ...
    async def write_generations(self, records: list[GenerationRecord]) -> None:
        """Insert a batch in one transaction, on the store's low-priority writer thread."""
        ...
    async def list_generations(self, project_id: str, query: str | None, limit: int,
                               offset: int) -> tuple[list[GenerationRecord], int]:
        """Newest first; `query` is a case-insensitive substring of the model, bodies or error."""
        ...
    async def get_generation(self, project_id: str, generation_id: str) -> GenerationRecord | None: ...
    async def delete_generation(self, project_id: str, generation_id: str) -> bool: ...
