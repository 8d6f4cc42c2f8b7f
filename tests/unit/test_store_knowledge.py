"""The knowledge store's one search interface on SQLite and Postgres alike: rankings by vector and by
words, a base's vectors kept in memory and read again after any replica's write, deletes that leave
nothing findable, and names unique per project."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from taskgate.errors import ConflictError, NotFoundError
from taskgate.store import SqlStore, open_store
from taskgate.store.knowledge_records import NewChunk

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _vector(*values: float) -> np.ndarray:
    array = np.asarray(values, dtype="<f4")
    return array / np.linalg.norm(array)


def _chunk(text: str, *values: float) -> NewChunk:
    return NewChunk(text, _vector(*values).tobytes())


async def test_rankings_by_vector_and_words(store: SqlStore, project: str) -> None:
    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "a", {"n": 1}, [_chunk("red apples and pears", 1, 0, 0),
                                                                _chunk("green pears", 0.9, 0.1, 0)])
    await store.knowledge.put_document(base.id, "b", {"n": 2}, [_chunk("blue sky", 0, 1, 0)])
    by_vector, by_words = await store.knowledge.ranked(base.id, _vector(0, 1, 0.1), ["pears", "sky"], 10)
    hits = {hit.chunk_id: hit for hit in await store.knowledge.chunk_hits(base.id, by_vector)}
    assert [hits[chunk_id].content for chunk_id in by_vector] == ["blue sky", "green pears", "red apples and pears"]
    assert {hits[chunk_id].content for chunk_id in by_words} == {"blue sky", "green pears", "red apples and pears"}
    by_vector, by_words = await store.knowledge.ranked(base.id, _vector(1, 0, 0), ["apples"], 1)
    assert [hit.content for hit in await store.knowledge.chunk_hits(base.id, by_vector + by_words)] == [
        "red apples and pears", "red apples and pears"]
    assert (await store.knowledge.get_base(project, base_id=base.id)).count == 2  # type: ignore[union-attr]


async def test_another_replicas_write_is_seen_by_the_next_search(store_url: str, store: SqlStore,
                                                                 project: str) -> None:
    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("one", 1, 0)])
    assert len((await store.knowledge.ranked(base.id, _vector(0, 1), [], 5))[0]) == 1  # now held in memory
    other = await open_store(store_url)
    try:
        assert isinstance(other, SqlStore)
        await other.knowledge.put_document(base.id, "b", {}, [_chunk("two", 0, 1)])
        by_vector, _ = await store.knowledge.ranked(base.id, _vector(0, 1), [], 5)
        assert [hit.key for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["b", "a"]
        assert await other.knowledge.delete_documents(base.id, None) == 2
    finally:
        await other.close()
    assert await store.knowledge.ranked(base.id, _vector(0, 1), ["one", "two"], 5) == ([], [])


async def test_replacing_a_key_and_deleting_a_base_leave_nothing_findable(store: SqlStore, project: str) -> None:
    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("old words", 1, 0)])
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("new text", 1, 0)])
    assert (await store.knowledge.ranked(base.id, None, ["old"], 5))[1] == []
    document = await store.knowledge.get_document(base.id, "a")
    assert document is not None and [text for _, text in document.segments] == ["new text"]
    assert await store.knowledge.delete_base(project, base.id)
    assert await store.knowledge.ranked(base.id, _vector(1, 0), ["new"], 5) == ([], [])
    assert await store.knowledge.get_base(project, base_id=base.id) is None


async def test_names_are_unique_per_project(store: SqlStore, project: str) -> None:
    await store.knowledge.create_base(project, "kb", "m")
    with pytest.raises(ConflictError):
        await store.knowledge.create_base(project, "kb", "m")
    other = await store.ensure_project("another")
    assert (await store.knowledge.create_base(other, "kb", "m")).name == "kb"
    assert await store.knowledge.get_base(other, name="kb") is not None
    assert (await store.knowledge.list_bases(project, 10, 0))[1] == 1


async def test_adds_of_one_key_at_once_leave_one_document(store: SqlStore, project: str) -> None:
    base = await store.knowledge.create_base(project, "kb", "m")
    await asyncio.gather(*(store.knowledge.put_document(base.id, "same", {"n": n}, [_chunk(f"text {n}", 1, 0)])
                           for n in range(8)))
    assert (await store.knowledge.get_base(project, base_id=base.id)).count == 1  # type: ignore[union-attr]
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(1, 0), [], 10)
    assert len(by_vector) == 1


async def test_an_add_to_a_deleted_base_is_not_found(store: SqlStore, project: str) -> None:
    base = await store.knowledge.create_base(project, "kb", "m")
    assert await store.knowledge.delete_base(project, base.id)
    with pytest.raises(NotFoundError):
        await store.knowledge.put_document(base.id, "a", {}, [_chunk("x", 1, 0)])
