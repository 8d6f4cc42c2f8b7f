"""Knowledge bases, their documents and chunks, and the chunks' search. Blocking calls on one connection,
run through `KnowledgeStore` in the database's thread pool.

Search has one interface (`ChunkSearch`) with an implementation per store, chosen by dialect:
- vector ranking is exact over a matrix kept in memory per base (`VectorMatrices`: every chunk vector
  scored by cosine similarity; vectors are stored unit length, so a dot product) when that matrix is
  current. When it is not (a write changed the base, or it was never read) and the store has a vector
  index in step with the base (store/knowledge_vectors.py: sqlite-vec on SQLite, pgvector on
  Postgres), the index answers while the matrix is read on the background thread; without the index
  the search reads the matrix first. See the README's scale note.
- full-text ranking is FTS5's bm25 on SQLite and ts_rank over `to_tsvector('simple', content)` on
  Postgres (the expression of migration 0008's GIN index). The query's words are OR-ed, each a quoted
  FTS5 string or a bind parameter, so no user text is read as query syntax.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from taskgate.errors import ConflictError, NotFoundError
from taskgate.ids import new_id
from taskgate.store.codec import utcnow
from taskgate.store.database import Database
from taskgate.store.examples import fts5_query
from taskgate.store.knowledge_records import ChunkHit, DocumentRecord, KnowledgeBaseRecord, NewChunk
from taskgate.store.knowledge_vectors import VectorIndex, index_for, indexed_versions, keep_in_step
from taskgate.store.tables import knowledge_bases as bases
from taskgate.store.tables import knowledge_chunks as chunks
from taskgate.store.tables import knowledge_documents as documents

_FTS = sa.table("knowledge_chunks_fts", sa.column("rowid"), sa.column("knowledge_base_id"))
_FTS_TABLE: sa.ColumnClause[str] = sa.literal_column("knowledge_chunks_fts")
_PG_CONFIG: sa.ColumnClause[str] = sa.literal_column("'simple'")  # must match migration 0008's index

if TYPE_CHECKING:
    import numpy as np


class ChunkSearch(Protocol):
    """Ranked chunk ids of one knowledge base: by meaning and by words."""

    def by_vector(self, conn: Connection, base_id: str, vector: np.ndarray, limit: int) -> list[int]: ...
    def by_words(self, conn: Connection, base_id: str, terms: list[str], limit: int) -> list[int]: ...


@dataclass(slots=True)
class _Matrix:
    version: int
    ids: np.ndarray  # chunk ids, int64
    vectors: np.ndarray  # float32, one unit row per chunk (rows of one width: the base's model's)


class VectorMatrices:
    """Each knowledge base's chunk vectors as one matrix in memory, for exact cosine search.

    Reading 100,000 vectors row by row takes over a second; a matrix-vector product over them, a few
    milliseconds. A matrix is kept with the base's `version`, which every write to the base bumps in
    the same transaction, so a search (on any replica) that reads another version builds it again.
    At most MAX_BYTES are kept, the least recently searched bases dropped first.
    """

    MAX_BYTES = 512 * 1024 * 1024

    def __init__(self) -> None:
        self._matrices: OrderedDict[str, _Matrix] = OrderedDict()
        self._lock = threading.Lock()

    def nearest(self, conn: Connection, base_id: str, vector: np.ndarray, limit: int) -> list[int]:

        version = conn.execute(sa.select(bases.c.version).where(bases.c.id == base_id)).scalar_one_or_none()
        if version is None:  # the base is gone: so is its matrix
            with self._lock:
                self._matrices.pop(base_id, None)
            return []
        dims = vector.shape[0]
        matrix = self.held(base_id, int(version), dims) or self.keep(base_id, _read_matrix(conn, base_id, int(version),
                                                                                           dims))
        return best_of(matrix, vector, limit)

    def held(self, base_id: str, version: int, dims: int) -> _Matrix | None:
        """The base's matrix when one of this version and width is in memory."""
        with self._lock:
            matrix = self._matrices.get(base_id)
            if matrix is not None and matrix.version == version and matrix.vectors.shape[1] == dims:
                self._matrices.move_to_end(base_id)
                return matrix
        return None

    def keep(self, base_id: str, matrix: _Matrix) -> _Matrix:
        with self._lock:
            self._matrices[base_id] = matrix
            self._matrices.move_to_end(base_id)
            while len(self._matrices) > 1 and sum(m.vectors.nbytes for m in self._matrices.values()) > self.MAX_BYTES:
                self._matrices.popitem(last=False)
        return matrix


def best_of(matrix: _Matrix, vector: np.ndarray, limit: int) -> list[int]:
    """The `limit` chunk ids of the matrix nearest to `vector`, ties in chunk order."""
    import numpy as np

    if matrix.ids.size == 0:
        return []
    scores = matrix.vectors @ vector.astype("<f4")
    count = min(limit, scores.shape[0])
    best = np.argpartition(-scores, count - 1)[:count]
    best = best[np.lexsort((matrix.ids[best], -scores[best]))]
    return [int(chunk_id) for chunk_id in matrix.ids[best]]


def _read_matrix(conn: Connection, base_id: str, version: int, dims: int) -> _Matrix:
    """The base's chunk vectors of `dims` dimensions (those of another model's width left out)."""
    import numpy as np

    rows = conn.execute(sa.select(chunks.c.id, chunks.c.embedding)
                        .where(chunks.c.knowledge_base_id == base_id)).all()
    width = dims * 4
    kept = [(row.id, row.embedding) for row in rows if len(row.embedding) == width]
    ids = np.fromiter((chunk_id for chunk_id, _ in kept), dtype=np.int64, count=len(kept))
    vectors = np.frombuffer(b"".join(blob for _, blob in kept), dtype="<f4").reshape(len(kept), dims)
    return _Matrix(version=version, ids=ids, vectors=vectors)


class VectorRanking:
    """By meaning. Where the vector index takes vectors of this width and is in step with the base: the
    base's matrix when it is in memory (a product over it is the fastest exact ranking), else the index,
    while the matrix is read in the background (after a write, the index answers at once instead of
    every search waiting for the vectors to be read again). Without the index: the matrix, read
    first when it is not in memory."""

    def __init__(self, matrices: VectorMatrices, index: VectorIndex | None, database: Database) -> None:
        self._matrices = matrices
        self._index = index
        self._database = database
        self._warming: set[tuple[str, int, int]] = set()
        self._lock = threading.Lock()

    def by_vector(self, conn: Connection, base_id: str, vector: np.ndarray, limit: int) -> list[int]:
        dims = vector.shape[0]
        if self._index is None or not self._index.supports(dims):
            return self._matrices.nearest(conn, base_id, vector, limit)
        versions = indexed_versions(conn, base_id)
        if versions is None:
            return []
        version, indexed = versions
        if indexed != version:
            return self._matrices.nearest(conn, base_id, vector, limit)
        matrix = self._matrices.held(base_id, version, dims)
        if matrix is not None:
            return best_of(matrix, vector, limit)
        self._warm(base_id, version, dims)
        return self._index.nearest(conn, base_id, vector, limit)

    def _warm(self, base_id: str, version: int, dims: int) -> None:
        """Read the base's matrix on the database's background thread, once per base and version."""
        key = (base_id, version, dims)
        with self._lock:
            if key in self._warming:
                return
            self._warming.add(key)

        def build(conn: Connection) -> None:
            try:
                if indexed_versions(conn, base_id) == (version, version):  # else a later search warms it
                    self._matrices.keep(base_id, _read_matrix(conn, base_id, version, dims))
            finally:
                with self._lock:
                    self._warming.discard(key)

        self._database.read_in_background(build)


class SqliteChunkSearch(VectorRanking):

    def by_words(self, conn: Connection, base_id: str, terms: list[str], limit: int) -> list[int]:
        query = (sa.select(_FTS.c.rowid).select_from(_FTS)
                 .where(_FTS_TABLE.op("MATCH")(fts5_query(terms)), _FTS.c.knowledge_base_id == base_id)
                 .order_by(sa.func.bm25(_FTS_TABLE), _FTS.c.rowid).limit(limit))
        return [int(row[0]) for row in conn.execute(query)]


class PostgresChunkSearch(VectorRanking):
    def by_words(self, conn: Connection, base_id: str, terms: list[str], limit: int) -> list[int]:
        parts: list[sa.ColumnElement[Any]] = [sa.func.plainto_tsquery(_PG_CONFIG, term) for term in terms]
        tsquery = reduce(lambda a, b: a.op("||")(b), parts)
        text_vector = sa.func.to_tsvector(_PG_CONFIG, chunks.c.content)
        query = (sa.select(chunks.c.id)
                 .where(chunks.c.knowledge_base_id == base_id, text_vector.op("@@")(tsquery))
                 .order_by(sa.func.ts_rank(text_vector, tsquery).desc(), chunks.c.id).limit(limit))
        return [int(row[0]) for row in conn.execute(query)]


def search_for(database: Database, index: VectorIndex | None) -> ChunkSearch:
    matrices = VectorMatrices()
    if database.dialect == "postgresql":
        return PostgresChunkSearch(matrices, index, database)
    return SqliteChunkSearch(matrices, index, database)


# ---- knowledge bases


def _base(row: Any, count: int = 0) -> KnowledgeBaseRecord:
    return KnowledgeBaseRecord(id=row.id, project_id=row.project_id, name=row.name,
                               embedding_model=row.embedding_model, created_at=row.created_at, count=count)


def create_base(conn: Connection, project_id: str, name: str, embedding_model: str) -> KnowledgeBaseRecord:
    """ConflictError when the project has a knowledge base of that name."""
    if conn.execute(sa.select(bases.c.id).where(bases.c.project_id == project_id, bases.c.name == name)).first():
        raise ConflictError(f"a knowledge base named '{name}' already exists")
    base = KnowledgeBaseRecord(id=new_id(), project_id=project_id, name=name, embedding_model=embedding_model,
                               created_at=utcnow())
    conn.execute(bases.insert().values(id=base.id, project_id=project_id, name=name, embedding_model=embedding_model,
                                       created_at=base.created_at))
    return base


def get_base(conn: Connection, project_id: str, *, base_id: str | None = None,
             name: str | None = None) -> KnowledgeBaseRecord | None:
    condition = bases.c.id == base_id if base_id is not None else bases.c.name == name
    row = conn.execute(sa.select(bases).where(bases.c.project_id == project_id, condition)).first()
    if row is None:
        return None
    count = conn.execute(sa.select(sa.func.count()).select_from(documents)
                         .where(documents.c.knowledge_base_id == row.id)).scalar_one()
    return _base(row, int(count))


def list_bases(conn: Connection, project_id: str, limit: int, offset: int) -> tuple[list[KnowledgeBaseRecord], int]:
    scope = bases.c.project_id == project_id
    rows = conn.execute(sa.select(bases).where(scope).order_by(bases.c.created_at, bases.c.id)
                        .limit(limit).offset(offset)).all()
    total = conn.execute(sa.select(sa.func.count()).select_from(bases).where(scope)).scalar_one()
    return [_base(row) for row in rows], int(total)


def delete_base(conn: Connection, project_id: str, base_id: str, index: VectorIndex | None) -> bool:
    deleted = conn.execute(bases.delete().where(bases.c.project_id == project_id, bases.c.id == base_id))
    if deleted.rowcount and index is not None:
        index.remove_base(conn, base_id)
    return bool(deleted.rowcount)


# ---- documents


def mark_changed(conn: Connection, base_id: str) -> int:
    """Bump the base's version, first in a write: a search's cached vectors of an older one are read
    again, and the row lock it takes makes writes to one base wait their turn (on Postgres too, so
    two adds of one key cannot both find nothing to replace). The new version; NotFoundError when the
    base is gone."""
    bumped = conn.execute(bases.update().where(bases.c.id == base_id).values(version=bases.c.version + 1))
    if not bumped.rowcount:
        raise NotFoundError(f"knowledge base '{base_id}' not found")
    return int(conn.execute(sa.select(bases.c.version).where(bases.c.id == base_id)).scalar_one())


def chunk_ids_of(conn: Connection, base_id: str, condition: sa.ColumnElement[bool]) -> list[int]:
    """Ids of the base's chunks whose documents meet `condition`: the index rows a delete removes."""
    rows = conn.execute(sa.select(chunks.c.id).join(documents, documents.c.id == chunks.c.document_id)
                        .where(chunks.c.knowledge_base_id == base_id, condition))
    return [int(chunk_id) for (chunk_id,) in rows]


def put_document(conn: Connection, base_id: str, key: str, metadata: dict[str, Any],
                 new_chunks: list[NewChunk], index: VectorIndex | None) -> str:
    """Store the document under `key`, replacing the one that had it (and its chunks); its id."""
    version = mark_changed(conn, base_id)
    replaced = chunk_ids_of(conn, base_id, documents.c.key == key) if index is not None else []
    conn.execute(documents.delete().where(documents.c.knowledge_base_id == base_id, documents.c.key == key))
    document_id = new_id()
    conn.execute(documents.insert().values(id=document_id, knowledge_base_id=base_id, key=key, metadata=metadata,
                                           created_at=utcnow()))
    if new_chunks:
        conn.execute(chunks.insert(), [
            {"knowledge_base_id": base_id, "document_id": document_id, "position": position,
             "content": chunk.content, "embedding": chunk.vector}
            for position, chunk in enumerate(new_chunks)])
    if index is not None:
        added = conn.execute(sa.select(chunks.c.id, chunks.c.embedding).where(chunks.c.document_id == document_id))
        keep_in_step(conn, index, base_id, version, replaced,
                     [(int(row.id), bytes(row.embedding)) for row in added])
    return document_id


def get_document(conn: Connection, base_id: str, key: str) -> DocumentRecord | None:
    row = conn.execute(sa.select(documents).where(documents.c.knowledge_base_id == base_id,
                                                  documents.c.key == key)).first()
    if row is None:
        return None
    segments = conn.execute(sa.select(chunks.c.id, chunks.c.content).where(chunks.c.document_id == row.id)
                            .order_by(chunks.c.position)).all()
    return DocumentRecord(id=row.id, key=row.key, metadata=row.metadata,
                          segments=[(int(segment.id), segment.content) for segment in segments])


def list_documents(conn: Connection, base_id: str, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """(key, metadata) of up to `limit` documents of the base by key, those after `after` when given:
    paged by the (base, key) unique index, so a late page costs what the first does."""
    conditions = [documents.c.knowledge_base_id == base_id]
    if after is not None:
        conditions.append(documents.c.key > after)
    rows = conn.execute(sa.select(documents.c.key, documents.c.metadata).where(*conditions)
                        .order_by(documents.c.key).limit(limit))
    return [(row.key, row.metadata) for row in rows]


def document_metadata(conn: Connection, base_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(id, metadata) of every document of the base: what a delete by filter is matched against."""
    rows = conn.execute(sa.select(documents.c.id, documents.c.metadata)
                        .where(documents.c.knowledge_base_id == base_id))
    return [(row.id, row.metadata) for row in rows]


def delete_documents(conn: Connection, base_id: str, document_ids: list[str] | None,
                     index: VectorIndex | None) -> int:
    """Delete these documents of the base (every one with None) and their chunks; how many went."""
    if document_ids is not None and not document_ids:
        return 0
    version = mark_changed(conn, base_id)
    condition = documents.c.knowledge_base_id == base_id
    if document_ids is not None:
        condition = sa.and_(condition, documents.c.id.in_(document_ids))
    removed = chunk_ids_of(conn, base_id, condition) if index is not None else []
    deleted = int(conn.execute(documents.delete().where(condition)).rowcount)
    keep_in_step(conn, index, base_id, version, removed, [])
    return deleted


def chunk_hits(conn: Connection, base_id: str, chunk_ids: list[int]) -> list[ChunkHit]:
    """The chunks with these ids, in the order of `chunk_ids`."""
    if not chunk_ids:
        return []
    rows = conn.execute(
        sa.select(chunks.c.id, chunks.c.content, documents.c.id.label("document_id"), documents.c.key,
                  documents.c.metadata)
        .join(documents, documents.c.id == chunks.c.document_id)
        .where(chunks.c.knowledge_base_id == base_id, chunks.c.id.in_(chunk_ids)))
    found = {int(row.id): ChunkHit(chunk_id=int(row.id), document_id=row.document_id, key=row.key,
                                   content=row.content, metadata=row.metadata) for row in rows}
    return [found[chunk_id] for chunk_id in chunk_ids if chunk_id in found]


class SqlKnowledgeStore:
    """The store's `KnowledgeStore` (store/base.py) over this module: each method one transaction in
    the database's pool."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._index = index_for(database.vector_extension)
        self._search = search_for(database, self._index)

    async def create_base(self, project_id: str, name: str, embedding_model: str) -> KnowledgeBaseRecord:
        try:
            return await self._database.write(lambda c: create_base(c, project_id, name, embedding_model))
        except IntegrityError as exc:  # a racing creator got the name first
            raise ConflictError(f"a knowledge base named '{name}' already exists") from exc

    async def get_base(self, project_id: str, *, base_id: str | None = None,
                       name: str | None = None) -> KnowledgeBaseRecord | None:
        return await self._database.read(lambda c: get_base(c, project_id, base_id=base_id, name=name))

    async def list_bases(self, project_id: str, limit: int, offset: int) -> tuple[list[KnowledgeBaseRecord], int]:
        return await self._database.read(lambda c: list_bases(c, project_id, limit, offset))

    async def delete_base(self, project_id: str, base_id: str) -> bool:
        return await self._database.write(lambda c: delete_base(c, project_id, base_id, self._index))

    async def put_document(self, base_id: str, key: str, metadata: dict[str, Any],
                           new_chunks: list[NewChunk]) -> str:
        return await self._database.write(lambda c: put_document(c, base_id, key, metadata, new_chunks, self._index))

    async def get_document(self, base_id: str, key: str) -> DocumentRecord | None:
        return await self._database.read(lambda c: get_document(c, base_id, key))

    async def document_metadata(self, base_id: str) -> list[tuple[str, dict[str, Any]]]:
        return await self._database.read(lambda c: document_metadata(c, base_id))

    async def list_documents(self, base_id: str, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        return await self._database.read(lambda c: list_documents(c, base_id, after, limit))

    async def delete_documents(self, base_id: str, document_ids: list[str] | None) -> int:
        return await self._database.write(lambda c: delete_documents(c, base_id, document_ids, self._index))

    async def ranked(self, base_id: str, vector: np.ndarray | None, terms: list[str],
                     limit: int) -> tuple[list[int], list[int]]:
        """The `limit` best chunk ids by meaning (none without a vector) and by words, the two read at
        once on two of the pool's threads (numpy's product and SQLite's search both let go of the GIL)."""
        async def by_vector() -> list[int]:
            if vector is None:
                return []
            return await self._database.read(lambda c: self._search.by_vector(c, base_id, vector, limit))

        async def by_words() -> list[int]:
            if not terms:
                return []
            return await self._database.read(lambda c: self._search.by_words(c, base_id, terms, limit))

        meaning, words = await asyncio.gather(by_vector(), by_words())
        return meaning, words

    async def chunk_hits(self, base_id: str, chunk_ids: list[int]) -> list[ChunkHit]:
        return await self._database.read(lambda c: chunk_hits(c, base_id, chunk_ids))
