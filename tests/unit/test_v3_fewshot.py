"""Few-shot selection against a real SQLite store: ranked by closeness, topped up, cheap when empty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskgate.engine.fewshot import ExampleSelector
from taskgate.store import open_store
from taskgate.store.base import ExampleRecord, FunctionDefinition, Store

TEXTS = [
    ("stock prices fell sharply today", "finance"),
    ("heavy rain expected tomorrow", "weather"),
    ("the striker scored twice in the final", "sport"),
    ("my cat sleeps on the warm mat", "cats"),
    ("central bank raises interest rates", "finance"),
    ("a kitten chased the cat toy", "cats"),
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'fewshot.db'}")
    yield opened
    await opened.close()


async def seed(store: Store) -> tuple[str, str]:
    project = await store.ensure_project("fewshot")
    function = await store.upsert_function(project, "classify", FunctionDefinition(instructions="Classify."))
    await store.add_examples(project, function.id, [
        ExampleRecord(id="", function_id=function.id, input={"text": text}, output={"label": label})
        for text, label in TEXTS
    ])
    return project, function.id


async def select_examples(store: Store, ids: tuple[str, str], task_input: object, count: int):
    return await ExampleSelector(store).select(ids[0], ids[1], task_input, count)


async def test_closest_examples_first(store: Store) -> None:
    project = await seed(store)
    chosen = await select_examples(store, project, {"text": "Does the cat like the kitten?"}, 2)
    assert [example.output for example in chosen] == [{"label": "cats"}, {"label": "cats"}]
    assert chosen[0].input == {"text": "a kitten chased the cat toy"}  # shares two rare words


async def test_ranking_beats_insertion_order(store: Store) -> None:
    project = await seed(store)
    chosen = await select_examples(store, project, "interest rates and stock prices", 2)
    assert {example.output["label"] for example in chosen} == {"finance"}
    assert {example.input["text"] for example in chosen} == {TEXTS[0][0], TEXTS[4][0]}


async def test_unmatched_slots_are_filled_with_other_examples(store: Store) -> None:
    project = await seed(store)
    chosen = await select_examples(store, project, {"text": "rain"}, 3)
    assert len(chosen) == 3 and chosen[0].output == {"label": "weather"}
    assert len({example.input["text"] for example in chosen}) == 3
    nothing_shared = await select_examples(store, project, {"n": 42}, 4)
    assert len(nothing_shared) == 4


async def test_nothing_to_show(store: Store) -> None:
    project = await seed(store)
    assert await select_examples(store, project, "cat", 0) == []
    empty = await store.upsert_function(project[0], "empty", FunctionDefinition(instructions="x"))
    assert empty.few_shot_count == 3
    assert await select_examples(store, (project[0], empty.id), "cat", 3) == []


async def test_an_empty_function_is_not_asked_again_until_its_examples_change(store: Store) -> None:
    project, _ = await seed(store)
    empty = await store.upsert_function(project, "later", FunctionDefinition(instructions="x"))
    selector = ExampleSelector(store, empty_ttl_s=3600)
    assert await selector.select(project, empty.id, "cat", 3) == []
    await store.add_examples(project, empty.id, [
        ExampleRecord(id="", function_id=empty.id, input={"text": "cat"}, output={"label": "cats"})])
    assert await selector.select(project, empty.id, "cat", 3) == []  # remembered as empty
    selector.changed(empty.id)
    assert [e.output for e in await selector.select(project, empty.id, "cat", 3)] == [{"label": "cats"}]
