"""The knowledge store's one search interface, tested alike on every implementation: SQLite with
sqlite-vec, SQLite exact (numpy over vectors in memory), Postgres exact, Postgres with pgvector (a
throwaway server from the dev extra, tests/pgvector_server.py). Rankings by vector and by words, another
replica's write seen by the next search, deletes that leave nothing findable, a rolled-back write that
leaves no index row, and names unique per project."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from taskgate.errors import ConflictError, NotFoundError
from taskgate.store import SqlStore, open_store
from taskgate.store.knowledge import put_document
from taskgate.store.knowledge_records import NewChunk
from taskgate.store.knowledge_vectors import indexed_versions
from taskgate.store.sqlite_driver import sqlite_driver
from tests.pgvector_server import PgvectorServer

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass(frozen=True, slots=True)
class Backend:
    url: str
    vector_extension: bool  # asked for
    expected_index: str | None  # what must then run


@pytest.fixture(params=["sqlite+sqlite-vec", "sqlite exact", "postgres exact", "postgres+pgvector"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    name = str(request.param)
    if name == "sqlite+sqlite-vec":
        driver = sqlite_driver()
        if driver.vec_version is None:
            pytest.skip(f"sqlite-vec cannot load here: {driver.reason}")
        return Backend(f"sqlite:///{tmp_path / 'taskgate.db'}", True, "sqlite-vec")
    if name == "sqlite exact":
        return Backend(f"sqlite:///{tmp_path / 'taskgate.db'}", False, None)
    if name == "postgres exact":  # the shared server has no pgvector; the switch keeps it exact anyway
        databases = request.getfixturevalue("postgres")
        if isinstance(databases, str):
            pytest.skip(databases)
        return Backend(databases.create(), False, None)  # its own: one test migrates down and up
    server = request.getfixturevalue("pgvector_server")
    if isinstance(server, str):
        pytest.skip(server)
    assert isinstance(server, PgvectorServer)
    return Backend(server.create_database(), True, "pgvector")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SqlStore]:
    opened = await open_store(backend.url, vector_extension=backend.vector_extension)
    assert isinstance(opened, SqlStore)
    assert opened.database.vector_extension == backend.expected_index
    yield opened
    await opened.close()


def _index_rows(store: SqlStore, base_id: str, dims: int) -> int:
    """Rows of the base in the vector index's table of that width (0 when there is no such table)."""
    def count(conn: sa.Connection) -> int:
        table = f"knowledge_vectors_{dims}"
        exists = (sa.text("SELECT count(*) FROM pg_tables WHERE tablename = :t") if conn.dialect.name == "postgresql"
                  else sa.text("SELECT count(*) FROM sqlite_master WHERE name = :t"))
        if not conn.execute(exists, {"t": table}).scalar_one():
            return 0
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE knowledge_base_id = :b"),
                                {"b": base_id}).scalar_one())
    return store.database.transaction(count, write=False)


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


async def test_another_replicas_write_is_seen_by_the_next_search(backend: Backend, store: SqlStore,
                                                                 project: str) -> None:
    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("one", 1, 0)])
    assert len((await store.knowledge.ranked(base.id, _vector(0, 1), [], 5))[0]) == 1  # now held in memory
    other = await open_store(backend.url, vector_extension=backend.vector_extension)
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


async def test_the_index_keeps_in_step_with_adds_replaces_and_deletes(backend: Backend, store: SqlStore,
                                                                     project: str) -> None:
    base = await store.knowledge.create_base(project, "kb", "m")
    indexed = 1 if backend.expected_index else 0
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("one", 1, 0, 0), _chunk("two", 0, 1, 0)])
    await store.knowledge.put_document(base.id, "b", {}, [_chunk("three", 0, 0, 1)])
    assert _index_rows(store, base.id, 3) == 3 * indexed
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("four", 0, 1, 0)])  # replaces a's two chunks
    assert _index_rows(store, base.id, 3) == 2 * indexed
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(0, 1, 0.2), [], 10)
    assert [hit.content for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["four", "three"]
    [(document_id, _)] = [found for found in await store.knowledge.document_metadata(base.id)
                          if found[0] != (await store.knowledge.get_document(base.id, "a")).id]  # type: ignore[union-attr]
    assert await store.knowledge.delete_documents(base.id, [document_id]) == 1
    assert _index_rows(store, base.id, 3) == 1 * indexed
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(0, 0, 1), [], 10)
    assert [hit.content for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["four"]
    assert await store.knowledge.delete_base(project, base.id)
    assert _index_rows(store, base.id, 3) == 0


async def test_a_rolled_back_write_leaves_nothing_searchable(store: SqlStore, project: str) -> None:
    """A file's ingestion writes its document in one transaction: when it fails after the chunks and the
    index rows are written, none of them stays."""
    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "kept", {}, [_chunk("kept words", 1, 0)])
    index = store.knowledge._index

    def half_ingested(conn: sa.Connection) -> None:
        put_document(conn, base.id, "file", {}, [_chunk("lost words", 0, 1)], index)
        raise RuntimeError("the parser failed after the chunks were written")

    with pytest.raises(RuntimeError):
        await store.database.write(half_ingested)
    by_vector, by_words = await store.knowledge.ranked(base.id, _vector(0, 1), ["lost", "words"], 10)
    assert [hit.key for hit in await store.knowledge.chunk_hits(base.id, by_vector + by_words)] == ["kept", "kept"]
    assert _index_rows(store, base.id, 2) == (1 if index is not None else 0)


async def test_writes_without_the_extension_are_ranked_exactly_then_reindexed(backend: Backend, store: SqlStore,
                                                                              project: str) -> None:
    """A replica without the extension writes chunks but no index rows: searches through the index's
    store rank exactly until its next write rebuilds the base's rows."""
    if backend.expected_index is None:
        pytest.skip("needs the vector extension")
    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("one", 1, 0)])
    plain = await open_store(backend.url, vector_extension=False)
    try:
        assert isinstance(plain, SqlStore)
        await plain.knowledge.put_document(base.id, "b", {}, [_chunk("two", 0, 1)])
    finally:
        await plain.close()
    assert _index_rows(store, base.id, 2) == 1  # behind
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(0, 1), [], 5)
    assert [hit.key for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["b", "a"]
    await store.knowledge.put_document(base.id, "c", {}, [_chunk("three", 1, 1)])
    assert _index_rows(store, base.id, 2) == 3
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(0, 1), [], 5)
    assert [hit.key for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["b", "c", "a"]


async def test_bases_of_one_width_are_searched_apart(store: SqlStore, project: str) -> None:
    """Another base's nearer vectors (in the same index table) never show up, however many there are."""
    mine = await store.knowledge.create_base(project, "mine", "m")
    crowd = await store.knowledge.create_base(project, "crowd", "m")
    await store.knowledge.put_document(mine.id, "far", {}, [_chunk("far", 0, 1)])
    await store.knowledge.put_document(crowd.id, "near", {}, [_chunk(f"near {n}", 1, n / 1000) for n in range(300)])
    by_vector, _ = await store.knowledge.ranked(mine.id, _vector(1, 0), [], 10)
    assert [hit.key for hit in await store.knowledge.chunk_hits(mine.id, by_vector)] == ["far"]


async def test_odd_widths_and_hostile_keys(store: SqlStore, project: str) -> None:
    """A query of a width the base has no vectors of finds nothing; a width past the index's limit is
    ranked exactly; a base id or key made of SQL stays data."""
    base = await store.knowledge.create_base(project, "kb", "m")
    hostile = "x'; DROP TABLE knowledge_chunks; --"
    wide = np.zeros(8200, dtype="<f4")
    wide[3] = 1.0
    await store.knowledge.put_document(base.id, hostile, {}, [NewChunk("wide", wide.tobytes())])
    await store.knowledge.put_document(base.id, "narrow", {}, [_chunk("narrow", 1, 0)])
    assert (await store.knowledge.ranked(base.id, _vector(1, 0, 0), [], 5))[0] == []
    by_vector, _ = await store.knowledge.ranked(base.id, wide, [], 5)
    assert [hit.key for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == [hostile]
    assert await store.knowledge.ranked(hostile, _vector(1, 0), ["narrow"], 5) == ([], [])
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(1, 0), [], 5)
    assert [hit.key for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["narrow"]


async def test_migration_0011_down_and_up_again_keeps_search_whole(store: SqlStore, project: str) -> None:
    """Going down drops the index's tables and `vector_version`; back up, searches rank exactly until
    the next write rebuilds the base's index rows."""
    from alembic import command

    from taskgate.store.migrate import alembic_config

    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "a", {}, [_chunk("one", 1, 0), _chunk("two", 0, 1)])

    def migrate(revision: str) -> None:
        def run(conn: sa.Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, revision) if revision != "head" else command.upgrade(config, revision)
        store.database.transaction(run, write=True)

    await asyncio.to_thread(migrate, "0010")
    assert _index_rows(store, base.id, 2) == 0
    await asyncio.to_thread(migrate, "head")
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(0, 1), [], 5)
    assert [hit.content for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["two", "one"]
    await store.knowledge.put_document(base.id, "b", {}, [_chunk("three", 1, 1)])
    assert _index_rows(store, base.id, 2) == (3 if store.database.vector_extension else 0)
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(0, 1), [], 5)
    assert [hit.content for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["two", "three", "one"]


async def test_the_index_answers_while_the_base_is_read_into_memory(backend: Backend, store: SqlStore,
                                                                   project: str) -> None:
    """With the index in step, a base not in memory is searched through the index while its matrix is
    read on the background thread; then the matrix answers, alike; a write makes the index answer again."""
    if backend.expected_index is None:
        pytest.skip("needs the vector extension")
    base = await store.knowledge.create_base(project, "kb", "m")
    await store.knowledge.put_document(base.id, "a", {}, [_chunk(f"chunk {n}", 1, n / 10) for n in range(20)])
    matrices = store.knowledge._search._matrices  # type: ignore[attr-defined]

    def held() -> bool:
        versions = store.database.transaction(lambda c: indexed_versions(c, base.id), write=False)
        assert versions is not None and versions[0] == versions[1]
        return matrices.held(base.id, versions[0], 2) is not None

    assert not held()
    through_index, _ = await store.knowledge.ranked(base.id, _vector(1, 0.55), [], 5)
    for _ in range(200):
        if held():
            break
        await asyncio.sleep(0.05)
    assert held()
    assert (await store.knowledge.ranked(base.id, _vector(1, 0.55), [], 5))[0] == through_index
    hits = await store.knowledge.chunk_hits(base.id, through_index)
    cosines = [float(_vector(1, n / 10) @ _vector(1, 0.55)) for n in range(20)]
    nearest = sorted(range(20), key=lambda n: -cosines[n])[:5]
    assert [hit.content for hit in hits] == [f"chunk {n}" for n in nearest]
    await store.knowledge.put_document(base.id, "b", {}, [_chunk("new", 1, 0.55)])
    assert not held()
    by_vector, _ = await store.knowledge.ranked(base.id, _vector(1, 0.55), [], 1)
    assert [hit.key for hit in await store.knowledge.chunk_hits(base.id, by_vector)] == ["b"]
