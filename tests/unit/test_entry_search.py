"""The engine's dataset pieces on a real store (SQLite, and Postgres when reachable): the entry search
(cosine ranking over stored vectors, full text and newest as fallbacks, an embedding failure kept
harmless), what a call by name keeps of a stored function, and a stored call writing nothing."""

from __future__ import annotations

import pytest

from taskgate.engine.embeddings import EmbeddingResult, EmbeddingTask
from taskgate.engine.entry_search import EntrySearch, entry_text
from taskgate.engine.examples import ExampleService
from taskgate.engine.functions import FunctionService, at_revision, merged_definition
from taskgate.engine.task import ModelChoice, Task, TaskConfig
from taskgate.errors import ProviderError
from taskgate.providers.base import EmbeddingResponse
from taskgate.store import SqlStore
from taskgate.store.base import ExampleRecord, FunctionDefinition

pytestmark = pytest.mark.asyncio(loop_scope="session")

VECTORS = {"north": [1.0, 0.0], "east": [0.0, 1.0], "north-east": [0.7, 0.7], "south": [-1.0, 0.0]}


class Embedder:
    """Vectors from a table; texts it does not know fail like a provider would."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    async def __call__(self, task: EmbeddingTask) -> EmbeddingResult:
        self.seen.append(task.inputs)
        if any(text not in VECTORS for text in task.inputs):
            raise ProviderError("the embedding provider is down")
        return EmbeddingResult("span", "trace", EmbeddingResponse([VECTORS[text] for text in task.inputs]), 0.0)


def _entry(text: str) -> ExampleRecord:
    return ExampleRecord(id="", function_id="", input=text, output=text.upper())


async def _function(store: SqlStore, project: str, name: str = "f") -> str:
    return (await store.create_function(project, name, FunctionDefinition(instructions="Do"), 3)).id


async def test_entries_are_ranked_by_cosine_similarity(store: SqlStore, project: str) -> None:
    embed = Embedder()
    examples = ExampleService(store, EntrySearch(store, embed, "p/m"))
    function_id = await _function(store, project)
    stored = await examples.add(project, function_id, [_entry(text) for text in ("north", "east", "south")])
    assert embed.seen == [["north", "east", "south"]]  # one request for the batch
    found = await examples.search(project, function_id, "north-east", 3)
    assert [e.input for e in found][2] == "south" and {e.input for e in found[:2]} == {"north", "east"}
    assert [e.input for e in await examples.search(project, function_id, "north", 1)] == ["north"]
    everything = await examples.search(project, function_id, "north", 5)  # no more than there are
    assert [e.id for e in everything] == [stored[0].id, stored[1].id, stored[2].id]  # north, east, then south


async def test_an_embedding_failure_keeps_the_entry_and_the_search_falls_back(store: SqlStore, project: str) -> None:
    embed = Embedder()
    examples = ExampleService(store, EntrySearch(store, embed, "p/m"))
    function_id = await _function(store, project)
    [kept] = await examples.add(project, function_id, [_entry("unknown words here")])
    assert await store.embedded_examples(project, function_id, "p/m", 10) == []
    await examples.add(project, function_id, [_entry("north")])
    found = await examples.search(project, function_id, "words", 2)  # the query fails to embed: full text
    assert found[0].id == kept.id and len(found) == 2
    found = await examples.search(project, function_id, "north", 2)  # ranked by vector, then filled by text
    assert [e.input for e in found] == ["north", "unknown words here"]


async def test_without_a_model_nothing_is_embedded(store: SqlStore, project: str) -> None:
    embed = Embedder()
    search = EntrySearch(store, embed, None)
    function_id = await _function(store, project)
    await ExampleService(store, search).add(project, function_id, [_entry("north")])
    assert not search.semantic and embed.seen == []
    assert [e.input for e in await search.search(project, function_id, "anything", 3)] == ["north"]


async def test_entry_text_is_the_string_or_sorted_json() -> None:
    assert entry_text("plain") == "plain"
    assert entry_text({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'
    assert len(entry_text("x" * 100_000)) == 8000


async def test_a_call_by_name_keeps_what_calls_do_not_set(store: SqlStore, project: str) -> None:
    service = FunctionService(store)
    created = await service.create(project, "kept", FunctionDefinition(
        instructions="Do", description="mine", model={"name": "openai/gpt-4o-mini", "options": {}}), 1)
    task = Task(project_id=project, function_name="kept", instructions="Do",
                models=[ModelChoice("openai/gpt-4o-mini")], config=TaskConfig(few_shot_count=3))
    merged = merged_definition(task, created)
    assert merged.description == "mine" and merged.configuration["few_shot_count"] == 1
    assert merged.model == {"name": "openai/gpt-4o-mini", "options": {}}  # as written: the same model
    task.models = [ModelChoice("openai/gpt-4o")]
    assert merged_definition(task, created).model == [{"name": "openai/gpt-4o", "options": {}}]


async def test_a_stored_call_writes_nothing(store: SqlStore, project: str) -> None:
    service = FunctionService(store)
    created = await service.create(project, "pinned", FunctionDefinition(instructions="Old"), 3)
    updated = await service.update(project, created, "pinned", FunctionDefinition(instructions="New"), 2)
    assert updated is not None
    revision = await store.get_revision_by_id(project, created.id, created.revision_id)
    assert revision is not None
    old = at_revision(updated, revision)
    assert (old.definition.instructions, old.revision_id, old.few_shot_count) == ("Old", created.revision_id, 3)
    task = Task(project_id=project, function_name="pinned", instructions="Old", stored=old)
    record, existed = await service.ensure(task)
    assert record is old and existed
    current = await service.get(project, "pinned")
    assert current is not None and current.revision_number == 2 and current.few_shot_count == 2
