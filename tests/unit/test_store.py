"""The SQL store against real databases: a SQLite file, and Postgres when reachable."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from taskgate.api.v3.run_shapes import task_from_run_request
from taskgate.engine.functions import FunctionService
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.store import SqlStore, open_store
from taskgate.store.base import ExampleRecord, FunctionDefinition, SpanRecord
from taskgate.store.cache import cache_put
from taskgate.store.database import BACKGROUND_NICE, normalize_url
from taskgate.store.migrate import alembic_config, upgrade_to_head
from taskgate.store.tables import api_keys, cache_entries, trace_names

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TABLES = {"projects", "api_keys", "functions", "function_revisions", "examples", "spans", "cache_entries"}


def _definition(instructions: str = "Summarise", **extra: object) -> FunctionDefinition:
    return FunctionDefinition(instructions=instructions, **extra)


def _span(project_id: str, span_id: str, trace_id: str, **fields: object) -> SpanRecord:
    return SpanRecord(id=span_id, trace_id=trace_id, project_id=project_id,
                      name=str(fields.pop("name", span_id)), **fields)


# ---- migrations and connection

async def test_migrations_are_idempotent_and_safe_concurrently(fresh_url: Callable[[], str]) -> None:
    url = fresh_url()
    first, second = await asyncio.gather(open_store(url), open_store(url))
    third = await open_store(url)
    try:
        assert isinstance(third, SqlStore)
        await asyncio.to_thread(upgrade_to_head, third.database)
        engine = third.database.engine
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [ScriptDirectory.from_config(alembic_config()).get_current_head()]
        assert set(sa.inspect(engine).get_table_names()) >= TABLES
        project = await second.ensure_project("p")
        assert await first.ensure_project("p") == project
    finally:
        for opened in (first, second, third):
            await opened.close()


async def test_open_store_rejects_unknown_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        await open_store("mysql://localhost/db")
    with pytest.raises(ValueError, match="invalid database URL"):
        await open_store("not a url")


async def test_postgres_urls_use_psycopg() -> None:
    for raw in ("postgresql://postgres@127.0.0.1:5432/db", "postgres://postgres@127.0.0.1:5432/db",
                "postgresql+psycopg://postgres@127.0.0.1:5432/db"):
        assert normalize_url(raw).drivername == "postgresql+psycopg"


async def test_in_memory_sqlite_works() -> None:
    memory = await open_store("sqlite://")
    try:
        project = await memory.ensure_project("p")
        function = await memory.upsert_function(project, "f", _definition())
        await memory.add_examples(project, function.id, [ExampleRecord(id="", function_id="", input="x", output=1)])
        assert [e.input for e in await memory.search_examples(project, function.id, "x", 3)] == ["x"]
    finally:
        await memory.close()


def _thread_nice(_conn: object) -> tuple[int, str]:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), threading.current_thread().name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
async def test_background_writes_run_on_one_lower_priority_thread(store: SqlStore) -> None:
    process_nice = os.getpriority(os.PRIO_PROCESS, 0)
    nice, name = await store.database.write(_thread_nice, background=True)
    assert name.startswith("taskgate-db-background")
    assert nice == min(19, process_nice + BACKGROUND_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == process_nice  # only that thread
    nice, name = await store.database.write(_thread_nice)
    assert nice == process_nice and not name.startswith("taskgate-db-background")
    nice, _ = await store.database.read(_thread_nice)
    assert nice == process_nice


# ---- projects and keys

async def test_api_keys_store_only_the_hash(store: SqlStore) -> None:
    key = await store.create_api_key("keys-project")
    assert re.fullmatch(r"tg_[A-Za-z0-9_-]{32}", key)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert await store.project_for_key_hash(digest) == await store.ensure_project("keys-project")
    assert await store.project_for_key_hash(hashlib.sha256(b"other").hexdigest()) is None
    with store.database.engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys)).mappings().all()
    assert any(row["key_hash"] == digest for row in rows)
    assert not any(key in str(value) for row in rows for value in row.values())
    assert await store.create_api_key("keys-project") != key


async def test_ensure_project_is_stable_under_concurrency(store: SqlStore) -> None:
    ids = await asyncio.gather(*(store.ensure_project("racing-project") for _ in range(6)))
    assert len(set(ids)) == 1
    with pytest.raises(BadRequestError):
        await store.ensure_project("")


# ---- functions and revisions

async def test_upsert_adds_revisions_only_on_change(store: SqlStore, project: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    first = await store.upsert_function(project, "fn", _definition(input_schema=schema))
    assert (first.revision_number, first.hit_count, first.few_shot_count) == (1, 0, 3)
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset() == timedelta(0)

    keywords_moved = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "type": "object"}
    same = await store.upsert_function(project, "fn", _definition(input_schema=keywords_moved))
    assert (same.revision_id, same.revision_number) == (first.revision_id, 1)

    second = await store.upsert_function(project, "fn", _definition("Translate", input_schema=schema))
    assert second.revision_number == 2 and second.revision_id != first.revision_id
    assert second.id == first.id
    assert second.schema_hash == first.schema_hash  # only the instructions changed

    third = await store.upsert_function(project, "fn", _definition("Translate", input_schema=schema,
                                                                   output_schema={"type": "string"}))
    assert third.schema_hash != second.schema_hash and len(third.schema_hash) == 16

    # Property order is part of a schema's meaning: another order is another revision, read back as written.
    reordered = {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}}}
    fourth = await store.upsert_function(project, "fn", _definition("Translate", input_schema=reordered,
                                                                    output_schema={"type": "string"}))
    assert fourth.revision_number == 4
    current = await store.get_function(project, "fn")
    assert current is not None and current.definition.input_schema is not None
    assert list(current.definition.input_schema["properties"]) == ["b", "a"]

    revisions = await store.list_revisions(project, "fn")
    assert [(r.number, r.is_current) for r in revisions] == [(1, False), (2, False), (3, False), (4, True)]
    old = await store.get_revision(project, "fn", 1)
    assert old is not None and old.definition.instructions == "Summarise" and not old.is_current
    assert await store.get_revision(project, "fn", 9) is None


async def test_revert_makes_a_new_revision_with_the_old_definition(store: SqlStore, project: str) -> None:
    await store.upsert_function(project, "fn", _definition("one", model="openai/gpt-4o-mini"))
    await store.upsert_function(project, "fn", _definition("two"))
    reverted = await store.revert_function(project, "fn", 1)
    assert reverted is not None and reverted.revision_number == 3
    assert (reverted.definition.instructions, reverted.definition.model) == ("one", "openai/gpt-4o-mini")
    again = await store.revert_function(project, "fn", 1)  # already current: nothing new
    assert again is not None and again.revision_number == 3
    assert await store.revert_function(project, "fn", 42) is None
    assert await store.revert_function(project, "missing", 1) is None


async def test_hits_few_shot_count_and_listing(store: SqlStore, project: str) -> None:
    for name in ("b-fn", "a-fn", "c-fn"):
        await store.upsert_function(project, name, _definition())
    await store.record_function_hits(project, "a-fn", 1)
    await store.record_function_hits(project, "a-fn", 2)
    await store.set_few_shot_count(project, "a-fn", 5)
    function = await store.get_function(project, "a-fn")
    assert function is not None and (function.hit_count, function.few_shot_count) == (3, 5)
    assert [f.name for f in await store.list_functions(project)] == ["a-fn", "b-fn", "c-fn"]
    assert [f.name for f in await store.list_functions(project, limit=1, offset=1)] == ["b-fn"]
    with pytest.raises(BadRequestError):
        await store.set_few_shot_count(project, "a-fn", -1)
    with pytest.raises(BadRequestError):
        await store.list_functions(project, limit=-1)


async def test_soft_delete_then_recreate(store: SqlStore, project: str) -> None:
    old = await store.upsert_function(project, "fn", _definition("old"))
    await store.upsert_function(project, "fn", _definition("older"))
    assert await store.delete_function(project, "fn") is True
    assert await store.delete_function(project, "fn") is False
    assert await store.get_function(project, "fn") is None
    assert await store.list_functions(project) == []
    assert await store.list_revisions(project, "fn") == []

    new = await store.upsert_function(project, "fn", _definition("old"))
    assert new.id != old.id and new.revision_number == 1
    assert [r.number for r in await store.list_revisions(project, "fn")] == [1]


async def test_concurrent_upserts_of_one_name(store: SqlStore, project: str) -> None:
    same = await asyncio.gather(*(store.upsert_function(project, "fn", _definition()) for _ in range(6)))
    assert len({f.id for f in same}) == 1 and {f.revision_number for f in same} == {1}

    changed = await asyncio.gather(*(store.upsert_function(project, "fn", _definition(f"v{i}"))
                                     for i in range(5)))
    assert len({f.id for f in changed}) == 1
    numbers = [r.number for r in await store.list_revisions(project, "fn")]
    assert numbers == list(range(1, 7))


# ---- examples

TOPICS = [
    "the volcano erupted and lava covered the village",
    "a quiet morning at the lake with ducks",
    "stock markets fell sharply on monday",
    "lava flows reached the sea near the volcano",
    "recipe for a chocolate cake with cherries",
    "the football match ended in a draw",
    "scientists measured the volcano temperature and lava viscosity",
    "a review of the new smartphone camera",
    "traffic jams in the city centre this weekend",
    "how to plant tomatoes in spring",
]


async def _function_with_examples(store: SqlStore, project: str) -> str:
    function = await store.upsert_function(project, "fewshot", _definition())
    records = [ExampleRecord(id="", function_id="", input={"text": text}, output={"n": i}, tag="train")
               for i, text in enumerate(TOPICS)]
    saved = await store.add_examples(project, function.id, records)
    assert len({r.id for r in saved}) == 10 and all(r.created_at for r in saved)
    return function.id


async def test_search_ranks_the_closest_examples_first(store: SqlStore, project: str) -> None:
    function_id = await _function_with_examples(store, project)
    found = await store.search_examples(project, function_id, "volcano lava", 3)
    assert {e.input["text"] for e in found} == {TOPICS[0], TOPICS[3], TOPICS[6]}

    best = await store.search_examples(project, function_id, "chocolate cherries cake", 1)
    assert [e.input["text"] for e in best] == [TOPICS[4]]
    # Sharing more of the query's words ranks higher.
    two = await store.search_examples(project, function_id, "ducks football draw", 2)
    assert [e.input["text"] for e in two] == [TOPICS[5], TOPICS[1]]


@pytest.mark.parametrize("query", ['"volcano', "volcano AND OR NOT", "NEAR(volcano lava)", "volcano*^:-{}()",
                                   "'; DROP TABLE examples; --", "col:volcano +lava", '""" ***'])
async def test_search_survives_query_syntax_characters(store: SqlStore, project: str, query: str) -> None:
    function_id = await _function_with_examples(store, project)
    found = await store.search_examples(project, function_id, query, 3)
    assert len(found) == 3


async def test_search_falls_back_to_newest_and_follows_deletes(store: SqlStore, project: str) -> None:
    function_id = await _function_with_examples(store, project)
    newest = await store.search_examples(project, function_id, "zeppelin", 2)
    assert [e.input["text"] for e in newest] == [TOPICS[9], TOPICS[8]]
    assert [e.input["text"] for e in await store.search_examples(project, function_id, "", 1)] == [TOPICS[9]]

    chocolate = await store.search_examples(project, function_id, "chocolate", 1)
    assert await store.delete_example(project, function_id, chocolate[0].id) is True
    assert await store.delete_example(project, function_id, chocolate[0].id) is False
    after = await store.search_examples(project, function_id, "chocolate", 1)
    assert after and after[0].input["text"] != TOPICS[4]


async def test_list_examples_pages_and_filters_by_tag(store: SqlStore, project: str) -> None:
    function_id = await _function_with_examples(store, project)
    await store.add_examples(project, function_id, [ExampleRecord(id="", function_id="", input="g", output="h",
                                                                  tag="golden", comment="why")])
    page = await store.list_examples(project, function_id, limit=3, offset=1)
    assert [e.input["text"] for e in page] == [TOPICS[9], TOPICS[8], TOPICS[7]]
    golden = await store.list_examples(project, function_id, tag="golden")
    assert [(e.input, e.output, e.comment) for e in golden] == [("g", "h", "why")]
    with pytest.raises(NotFoundError):
        await store.add_examples(project, "00000000-0000-0000-0000-000000000000", [])


# ---- spans and traces

async def test_traces_summarise_filter_and_page(store: SqlStore, project: str) -> None:
    spans = []
    for n in range(3):
        trace = f"trace-{n}-{project}"
        start = T0 + timedelta(minutes=n)
        spans += [
            _span(project, f"root-{n}-{project}", trace, name=f"Job_{n}", start_time=start,
                  end_time=start + timedelta(seconds=5), input={"q": n}, output={"a": n},
                  usage={"input_tokens": 10, "output_tokens": 5}),
            _span(project, f"child-{n}-{project}", trace, name="llm", parent_id=f"root-{n}-{project}",
                  start_time=start + timedelta(seconds=1), end_time=start + timedelta(seconds=9),
                  usage={"total_tokens": 100}, status="error" if n == 1 else "ok"),
        ]
    await store.write_spans(spans)

    items, total = await store.list_traces(project)
    assert total == 3
    assert [t.name for t in items] == ["Job_2", "Job_1", "Job_0"]
    newest = items[0]
    assert (newest.span_count, newest.total_tokens, newest.status) == (2, 115, "ok")
    assert (newest.input, newest.output) == ({"q": 2}, {"a": 2})
    assert newest.start_time == T0 + timedelta(minutes=2)
    assert newest.end_time == T0 + timedelta(minutes=2, seconds=9)

    filtered, count = await store.list_traces(project, name="JOB_1")
    assert count == 1 and [t.name for t in filtered] == ["Job_1"]
    assert (await store.list_traces(project, name="%"))[1] == 0  # LIKE wildcards are literal
    assert (await store.list_traces(project, name="o_"))[1] == 0  # "_" is literal too ("ob" must not match)
    assert (await store.list_traces(project, name="b_"))[1] == 3
    page, count = await store.list_traces(project, limit=1, offset=1)
    assert count == 3 and [t.name for t in page] == ["Job_1"]


async def test_traces_are_listed_by_their_roots_and_counted_as_they_change(store: SqlStore, project: str) -> None:
    """Listing reads the trigger-kept `trace_roots` (never every span): a trace is listed once, by
    its earliest root, and the unfiltered total follows inserts, rewrites that change parenthood or
    start, and deletes. A trace whose root is gone stays readable by id but is not listed."""
    trace, orphan = f"t-{project}", f"orphan-{project}"
    await store.write_spans([
        _span(project, f"second-{project}", trace, name="second", start_time=T0 + timedelta(seconds=2)),
        _span(project, f"first-{project}", trace, name="first", start_time=T0 + timedelta(seconds=1)),
        _span(project, f"child-{project}", trace, name="child", parent_id=f"first-{project}", start_time=T0),
        _span(project, f"stray-{project}", orphan, name="stray", parent_id="gone", start_time=T0),
    ])
    items, total = await store.list_traces(project)
    assert total == 1 and [(t.id, t.name, t.span_count, t.start_time) for t in items] == [(trace, "first", 3, T0)]
    assert [span.name for span in await store.get_trace(project, orphan)] == ["stray"]
    assert await store.trace_exists(project, orphan) and not await store.trace_exists(project, "nothing")
    assert (await store.list_traces(project, name="FIRS"))[1] == 1  # the trace's name: its earliest root's
    assert (await store.list_traces(project, name="SECOND"))[1] == 0  # a later root does not name it

    adopted = _span(project, f"stray-{project}", orphan, name="stray", start_time=T0 + timedelta(seconds=3))
    await store.write_spans([adopted, adopted])  # a rewrite that makes it a root, twice in one batch
    items, total = await store.list_traces(project)
    assert total == 2 and [t.id for t in items] == [orphan, trace]
    moved = _span(project, f"stray-{project}", orphan, name="stray", start_time=T0)
    await store.write_spans([moved])  # its start moved before the other trace's: the order follows
    assert [t.id for t in (await store.list_traces(project))[0]] == [trace, orphan]
    await store.delete_span(project, f"first-{project}")
    items, total = await store.list_traces(project)
    assert total == 2 and [(t.id, t.name) for t in items] == [(trace, "second"), (orphan, "stray")]
    assert (await store.list_traces(project, name="second"))[1] == 1  # the next root named it
    assert (await store.list_traces(project, name="first")) == ([], 0)
    renamed = _span(project, f"stray-{project}", orphan, name="renamed", start_time=T0)
    await store.write_spans([renamed])
    assert [t.id for t in (await store.list_traces(project, name="RENAMED"))[0]] == [orphan]
    assert (await store.list_traces(project, name="stray")) == ([], 0)
    await store.delete_span(project, f"second-{project}")
    await store.delete_trace(project, orphan)
    assert await store.list_traces(project) == ([], 0)


@pytest.mark.parametrize("matching", [1, 40, 119])
async def test_a_name_filter_pages_alike_however_it_is_read(store: SqlStore, project: str, matching: int) -> None:
    """A filtered page is read by walking all traces or by gathering the named ones, whichever is
    cheaper for how many match (`_named_page`); the pages and totals must be the same either way."""
    spans = [_span(project, f"r{n}-{project}", f"t{n}-{project}", start_time=T0 + timedelta(seconds=n),
                   name="wanted" if n < matching else f"other{n % 7}") for n in range(120)]
    await store.write_spans(spans)
    expected = [span.trace_id for span in reversed(spans) if span.name == "wanted"]
    for limit, offset in ((10, 0), (7, 3), (100, 0), (5, 200)):
        page, total = await store.list_traces(project, name="WANT", limit=limit, offset=offset)
        assert total == matching and [t.id for t in page] == expected[offset:offset + limit]


async def test_span_roundtrip_upsert_and_delete(store: SqlStore, project: str) -> None:
    trace = f"t-{project}"
    plus_two = timezone(timedelta(hours=2))
    span = _span(project, f"s-{project}", trace, type="generation",
                 start_time=datetime(2026, 1, 1, 12, tzinfo=plus_two), input="hi", model_chain=["a/b", "c/d"],
                 model_used="c/d", models_failed=["a/b"], attempts=2, cost=0.25, tags={"k": "v"},
                 meta={"m": [1, 2]}, function_name="fn")
    await store.write_spans([span])
    stored = await store.get_span(project, span.id)
    assert stored is not None
    assert stored.start_time == datetime(2026, 1, 1, 10, tzinfo=UTC) and stored.start_time.tzinfo is not None
    assert (stored.model_chain, stored.models_failed, stored.tags, stored.meta) == (
        ["a/b", "c/d"], ["a/b"], {"k": "v"}, {"m": [1, 2]})
    assert (stored.type, stored.cost, stored.attempts, stored.function_name) == ("generation", 0.25, 2, "fn")

    span.output, span.status = {"done": True}, "error"
    child = _span(project, f"c-{project}", trace, parent_id=span.id, start_time=T0)
    await store.write_spans([span, child, span])
    stored = await store.get_span(project, span.id)
    assert stored is not None and (stored.output, stored.status) == ({"done": True}, "error")
    assert [s.id for s in await store.get_trace(project, trace)] == [child.id, span.id]

    assert await store.delete_span(project, child.id) is True
    assert await store.delete_span(project, child.id) is False
    assert await store.delete_trace(project, trace) is True
    assert await store.get_trace(project, trace) == []
    assert await store.delete_trace(project, trace) is False


async def test_every_kind_of_value_round_trips_exactly(store: SqlStore, project: str) -> None:
    """A batch travels as one JSON text on SQLite: every column must come back as it went in."""
    tricky = 'quote " backslash \\ newline \n tab \t \u2028 é 中文 🎉 \\u0000 '
    span = _span(project, f"rt-{project}", f"t-{project}", name=tricky, type="generation",
                 start_time=datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC), end_time=None,
                 input=tricky, output={"n": [0, -1, 2**53 + 1, 1.5e-300, 0.1, True, False, None, "", {}, []],
                                       tricky: tricky},
                 error="", model_chain=[], attempts=0, usage={"input_tokens": 0}, cost=0.1 + 0.2,
                 tags={}, meta={"float": 1.0})
    await store.write_spans([span])
    stored = await store.get_span(project, span.id)
    assert stored == span
    assert isinstance(stored.cost, float) and isinstance(stored.attempts, int)
    assert stored.meta == {"float": 1.0} and isinstance(stored.meta["float"], float)


async def test_awkward_spans_are_still_written(store: SqlStore, project: str) -> None:
    """NUL characters (which Postgres refuses) and odd JSON values must not sink a batch."""
    nul = _span(project, f"nul-{project}", f"t-{project}", name="a\x00b", input={"k\x00": "v\x00w"},
                error="e\x00", meta={"when": T0, "ids": {1, 2} - {2}})
    unregistered = str(uuid.uuid4())
    orphan = _span(unregistered, "s", "t")  # spans need no project row
    await store.write_spans([nul, orphan])
    stored = await store.get_span(project, nul.id)
    assert stored is not None
    assert stored.name.replace("\x00", "") == "ab" and stored.error is not None
    assert stored.input in ({"k\x00": "v\x00w"}, {"k": "vw"})
    assert stored.meta == {"when": T0.isoformat(), "ids": "{1}"}
    assert await store.get_span(unregistered, "s") is not None


async def test_a_span_that_cannot_be_stored_does_not_sink_its_batch(store: SqlStore, project: str) -> None:
    bad = _span(project, f"big-{project}", f"t-{project}", input={"n": 2**70})  # JSON has no 70-bit integer
    wide = _span(project, f"wide-{project}", f"t-{project}", attempts=2**63)  # no SQL integer holds it
    good = _span(project, f"ok-{project}", f"t-{project}")
    await store.write_spans([bad, wide, good])
    assert await store.get_span(project, good.id) is not None
    assert await store.get_span(project, bad.id) is None
    assert await store.get_span(project, wide.id) is None


# ---- cache

async def test_cache_put_get_and_expiry(store: SqlStore, project: str) -> None:
    assert await store.cache_get(project, "k") is None
    await store.cache_put(project, "k", {"answer": 1}, ttl_seconds=60)
    assert await store.cache_get(project, "k") == {"answer": 1}
    await store.cache_put(project, "k", {"answer": 2}, ttl_seconds=60)
    assert await store.cache_get(project, "k") == {"answer": 2}
    await store.cache_put(project, "off", {"answer": 3}, ttl_seconds=0)
    assert await store.cache_get(project, "off") is None

    past = datetime.now(UTC) - timedelta(seconds=1)
    await store.database.write(lambda c: c.execute(
        cache_entries.update().where(cache_entries.c.project_id == project).values(expires_at=past)))
    assert await store.cache_get(project, "k") is None
    await store.database.write(lambda c: cache_put(c, project, "fresh", {"x": 1}, 60, sweep=True))
    remaining = await store.database.read(lambda c: c.execute(
        sa.select(cache_entries.c.key).where(cache_entries.c.project_id == project)).scalars().all())
    assert remaining == ["fresh"]


# ---- isolation between projects

async def test_projects_cannot_see_each_other(store: SqlStore, project: str) -> None:
    a, b = project, await store.ensure_project(f"other-{project}")
    function = await store.upsert_function(a, "shared-name", _definition("A's"))
    await store.add_examples(a, function.id, [ExampleRecord(id="", function_id="", input="secret", output="x")])
    span = _span(a, "same-span-id", f"trace-{a}", name="a-root", input="a-data", start_time=T0)
    await store.write_spans([span])
    await store.cache_put(a, "key", {"owner": "a"}, ttl_seconds=60)

    assert await store.get_function(b, "shared-name") is None
    assert await store.list_functions(b) == []
    assert await store.list_revisions(b, "shared-name") == []
    assert await store.revert_function(b, "shared-name", 1) is None
    assert await store.delete_function(b, "shared-name") is False
    assert await store.list_examples(b, function.id) == []
    assert await store.search_examples(b, function.id, "secret", 5) == []
    with pytest.raises(NotFoundError):
        await store.add_examples(b, function.id, [ExampleRecord(id="", function_id="", input="i", output="o")])
    assert await store.get_span(b, span.id) is None
    assert await store.get_trace(b, span.trace_id) == []
    assert await store.list_traces(b) == ([], 0)
    assert await store.delete_span(b, span.id) is False
    assert await store.delete_trace(b, span.trace_id) is False
    assert await store.cache_get(b, "key") is None

    # The same client-chosen span id in B is B's own span, and leaves A's alone.
    await store.write_spans([_span(b, "same-span-id", f"trace-{b}", name="b-root", input="b-data")])
    mine = await store.get_span(a, span.id)
    assert mine is not None and mine.input == "a-data"
    await store.cache_put(b, "key", {"owner": "b"}, ttl_seconds=60)
    assert await store.cache_get(a, "key") == {"owner": "a"}
    assert (await store.get_function(a, "shared-name")) is not None


# ---- what a replica remembers of a function

async def test_a_replica_does_not_restore_a_prompt_changed_elsewhere(store: SqlStore, project: str) -> None:
    """Replica A calls a function by name; replica B then changes its prompt through the API. Once A's
    trust in what it knows runs out, a call on A must use B's prompt, not store A's stale one again."""
    replica_a = FunctionService(store, recheck_s=0.05)
    first, _ = await replica_a.ensure(task_from_run_request({"input": 1, "instructions": "old"}, project, "fn", None))
    changed = await store.upsert_function(  # replica B's PATCH /v3/functions/fn
        project, "fn", dataclasses.replace(first.definition, instructions="new"))
    await asyncio.sleep(0.1)

    stored = await replica_a.current(project, "fn")
    assert stored is not None and stored.definition.instructions == "new"
    record, _ = await replica_a.ensure(task_from_run_request({"input": 1}, project, "fn", stored))
    assert record.revision_id == changed.revision_id
    assert [r.definition.instructions for r in await store.list_revisions(project, "fn")] in (
        ["old", "new"], ["new", "old"])


async def test_migration_0006_names_the_traces_already_stored(fresh_url: Callable[[], str]) -> None:
    """Going up from 0005 on a database that holds traces gives each its name and count, so a
    filtered listing finds what was written before the upgrade; going down and up again keeps it."""
    from alembic import command

    store = await open_store(fresh_url())
    assert isinstance(store, SqlStore)
    try:
        project = await store.ensure_project("p")

        def migrate(revision: str) -> None:
            def run(conn: sa.Connection) -> None:
                config = alembic_config()
                config.attributes["connection"] = conn
                command.downgrade(config, revision) if revision != "head" else command.upgrade(config, revision)
            store.database.transaction(run, write=True)

        await asyncio.to_thread(migrate, "0005")
        await store.write_spans([_span(project, f"r{n}", f"t{n}", name=f"job-{n % 2}", start_time=T0 + timedelta(n))
                                 for n in range(5)])
        await asyncio.to_thread(migrate, "head")
        page, total = await store.list_traces(project, name="JOB-0")
        assert total == 3 and [t.id for t in page] == ["t4", "t2", "t0"]
        await store.write_spans([_span(project, "r5", "t5", name="job-0", start_time=T0 + timedelta(9))])
        assert (await store.list_traces(project, name="job-0"))[1] == 4  # the triggers keep it from here
    finally:
        await store.close()
async def test_what_callers_wrote_reads_back_in_their_key_order(store: SqlStore, project: str) -> None:
    """Examples and span inputs and outputs keep each object's key order (Postgres `jsonb` would not)."""
    answer = {"thoughts": "first", "steps": [{"why": "w", "action": "a"}], "verdict": {"score": 1, "label": "x"},
              "answer": "last"}
    question = {"zeta": 1, "alpha": {"mid": 2, "b": 3}}

    def order(value: object) -> object:
        if isinstance(value, dict):
            return [(key, order(item)) for key, item in value.items()]
        return [order(item) for item in value] if isinstance(value, list) else None

    function = await store.upsert_function(project, "ordered", _definition())
    await store.add_examples(project, function.id, [
        ExampleRecord(id="", function_id="", input=question, output=answer, expected=answer)])
    stored = (await store.list_examples(project, function.id))[0]
    assert [order(stored.input), order(stored.output), order(stored.expected)] == [order(question), order(answer),
                                                                                   order(answer)]
    await store.write_spans([_span(project, f"ordered-{project}", f"ordered-trace-{project}", input=question,
                                   output=answer)])
    span = await store.get_span(project, f"ordered-{project}")
    assert span is not None and [order(span.input), order(span.output)] == [order(question), order(answer)]


async def test_a_long_wide_root_name_is_kept_and_found(store: SqlStore, project: str) -> None:
    """A name of 1024 four-byte characters is longer than a Postgres index entry may be: the name
    tables keep its first 500 characters, so the batch is written and the trace found by them."""
    name = "🦊" * 1024
    await store.write_spans([_span(project, f"wide-{project}", f"wide-trace-{project}", name=name),
                             _span(project, f"plain-{project}", f"plain-trace-{project}", name="plain")])
    [found], total = await store.list_traces(project, name="🦊" * 10)
    assert total == 1 and found.name == name  # the listing shows the whole name
    assert (await store.list_traces(project, name="plain"))[1] == 1


async def test_a_filter_matching_more_names_than_a_statement_may_bind(store: SqlStore, project: str) -> None:
    """Postgres binds at most 65,535 parameters to a statement: the matching names are a subquery.
    The name counts are written straight into `trace_names` (as its triggers would for that many
    traces, which would take minutes), beside two real traces."""
    await store.write_spans([_span(project, f"j{n}-{project}", f"jt{n}-{project}", name=f"job real {n}",
                                   start_time=T0 + timedelta(seconds=n)) for n in range(2)])
    rows = [{"project_id": project, "name": f"job {n}", "traces": 1} for n in range(66_000)]
    await store.database.write(lambda conn: conn.execute(sa.insert(trace_names), rows))
    page, total = await store.list_traces(project, name="job", limit=5)
    assert total == 66_002 and [t.name for t in page] == ["job real 1", "job real 0"]
