"""The store's v2 function and dataset methods, on a SQLite file and on Postgres when reachable:
functions by id and by dataset, creating, renaming and listing them, revisions by id, and dataset
entries (examples) with `expected` and their vectors; plus migration 0002 going down and up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic import command

from taskgate.errors import ConflictError
from taskgate.store import SqlStore, open_store
from taskgate.store.base import ExampleRecord, FunctionDefinition
from taskgate.store.migrate import alembic_config

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _entry(text: str, **fields: object) -> ExampleRecord:
    return ExampleRecord(id="", function_id="", input=text, output=text.upper(), **fields)  # type: ignore[arg-type]


async def test_functions_by_id_and_dataset_are_scoped_to_the_project(store: SqlStore, project: str) -> None:
    made = await store.create_function(project, "f/one", FunctionDefinition(instructions="Do", description="d"), 2)
    assert (made.few_shot_count, made.definition.description, made.revision_number) == (2, "d", 1)
    assert await store.get_function_by_id(project, made.id) == made
    assert await store.get_function_by_dataset(project, made.dataset_id) == made
    other = await store.ensure_project(f"other-{uuid.uuid4().hex}")
    assert await store.get_function_by_id(other, made.id) is None
    assert await store.get_function_by_dataset(other, made.dataset_id) is None
    assert await store.get_function_by_dataset(project, made.id) is None  # a function id is no dataset id
    with pytest.raises(ConflictError):
        await store.create_function(project, "f/one", FunctionDefinition(instructions="Again"), 3)
    await store.delete_function(project, "f/one")
    assert await store.get_function_by_id(project, made.id) is None
    assert await store.get_function_by_dataset(project, made.dataset_id) is None


async def test_concurrent_creates_of_one_name_give_one_function(store: SqlStore, project: str) -> None:
    results = await asyncio.gather(*(store.create_function(project, "racy", FunctionDefinition(instructions=str(i)), 3)
                                     for i in range(4)), return_exceptions=True)
    made = [result for result in results if not isinstance(result, BaseException)]
    assert len(made) == 1 and all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))


async def test_update_renames_and_adds_a_revision_only_for_a_new_definition(store: SqlStore, project: str) -> None:
    made = await store.create_function(project, "old", FunctionDefinition(instructions="Do"), 3)
    await store.create_function(project, "taken", FunctionDefinition(instructions="Do"), 3)
    renamed = await store.update_function(project, made.id, "new", made.definition, 1)
    assert renamed is not None and (renamed.name, renamed.revision_number, renamed.few_shot_count) == ("new", 1, 1)
    assert await store.get_function(project, "old") is None
    with pytest.raises(ConflictError):
        await store.update_function(project, made.id, "taken", made.definition, 1)
    changed = await store.update_function(project, made.id, "new", FunctionDefinition(instructions="Do more"), 1)
    assert changed is not None and changed.revision_number == 2
    assert await store.update_function(project, str(uuid.uuid4()), "x", made.definition, 1) is None

    page = await store.list_revisions_page(project, made.id, limit=1, offset=0)
    assert page is not None
    revisions, total = page
    assert total == 2 and [r.number for r in revisions] == [2] and revisions[0].is_current
    first = await store.get_revision_by_id(project, made.id, made.revision_id)
    assert first is not None and first.definition.instructions == "Do" and not first.is_current
    other = await store.create_function(project, "another", FunctionDefinition(instructions="Do"), 3)
    assert await store.get_revision_by_id(project, other.id, made.revision_id) is None
    assert await store.list_revisions_page(project, str(uuid.uuid4()), limit=10, offset=0) is None


async def test_listing_filters_by_name_sorts_and_counts(store: SqlStore, project: str) -> None:
    for name in ("b_Beta", "a%alpha", "c_gamma"):
        await store.create_function(project, name, FunctionDefinition(instructions="Do"), 3)
    everything, total = await store.list_functions_page(project, None, "-name", limit=10, offset=0)
    assert total == 3 and [f.name for f in everything] == ["c_gamma", "b_Beta", "a%alpha"]
    found, total = await store.list_functions_page(project, "BETA", "name", limit=10, offset=0)
    assert (total, [f.name for f in found]) == (1, ["b_Beta"])
    found, total = await store.list_functions_page(project, "%", "name", limit=10, offset=0)  # literal, not a wildcard
    assert (total, [f.name for f in found]) == (1, ["a%alpha"])
    page, total = await store.list_functions_page(project, "_", "created_at", limit=1, offset=1)
    assert (total, [f.name for f in page]) == (2, ["c_gamma"])


async def test_entries_keep_expected_and_change_field_by_field(store: SqlStore, project: str) -> None:
    function = await store.create_function(project, "entries", FunctionDefinition(instructions="Do"), 3)
    [entry] = await store.add_examples(project, function.id, [_entry("cats", expected={"a": 1}, comment="c")])
    assert await store.get_example(project, function.id, entry.id) == entry
    assert entry.expected == {"a": 1} and await store.count_examples(project, function.id) == 1
    changed = await store.update_example(project, function.id, entry.id, {"output": 5, "comment": None,
                                                                          "tag": "ignored"})
    assert changed is not None and (changed.output, changed.comment, changed.tag) == (5, None, None)
    moved = await store.update_example(project, function.id, entry.id, {"input": "dogs"})
    assert moved is not None and moved.input == "dogs"
    assert [e.id for e in await store.search_examples(project, function.id, "dogs", 5)] == [entry.id]
    other = await store.create_function(project, "elsewhere", FunctionDefinition(instructions="Do"), 3)
    assert await store.get_example(project, other.id, entry.id) is None
    assert await store.update_example(project, other.id, entry.id, {"output": 1}) is None


async def test_vectors_are_kept_per_model_and_dropped_with_a_new_input(store: SqlStore, project: str) -> None:
    function = await store.create_function(project, "vectors", FunctionDefinition(instructions="Do"), 3)
    entries = await store.add_examples(project, function.id, [_entry("one"), _entry("two"), _entry("three")])
    await store.set_example_embeddings(project, [(entry.id, [float(i), 1.0]) for i, entry in enumerate(entries)],
                                       "p/m")
    await store.set_example_embeddings(project, [(entries[0].id, [9.0])], "p/other")
    await store.set_example_embeddings(project, [], "p/m")
    vectors = await store.embedded_examples(project, function.id, "p/m", limit=2)
    assert vectors == [(entries[2].id, [2.0, 1.0]), (entries[1].id, [1.0, 1.0])]  # the newest first
    await store.update_example(project, function.id, entries[2].id, {"input": "new"})
    assert [i for i, _ in await store.embedded_examples(project, function.id, "p/m", limit=5)] == [entries[1].id]
    ordered = await store.examples_by_ids(project, function.id, [entries[1].id, "missing", entries[0].id])
    assert [e.id for e in ordered] == [entries[1].id, entries[0].id]
    assert await store.examples_by_ids(project, function.id, []) == []


async def test_migration_0002_goes_down_and_up_again(fresh_url: Callable[[], str]) -> None:
    """On a database of its own: going down drops the tables of later migrations too."""
    store = await open_store(fresh_url())
    assert isinstance(store, SqlStore)
    try:
        project = await store.ensure_project("p")
        function = await store.create_function(project, "migrated", FunctionDefinition(instructions="Do"), 3)
        await store.add_examples(project, function.id, [_entry("kept")])

        def cycle(revision: str) -> set[str]:
            def run(conn: sa.Connection) -> set[str]:
                config = alembic_config()
                config.attributes["connection"] = conn
                command.downgrade(config, "0001") if revision == "0001" else command.upgrade(config, revision)
                return {column["name"] for column in sa.inspect(conn).get_columns("examples")}
            return store.database.transaction(run, write=True)

        assert "expected" not in await asyncio.to_thread(cycle, "0001")
        assert {"expected", "embedding", "embedding_model"} <= await asyncio.to_thread(cycle, "head")
        assert [e.input for e in await store.search_examples(project, function.id, "kept", 5)] == ["kept"]
    finally:
        await store.close()
