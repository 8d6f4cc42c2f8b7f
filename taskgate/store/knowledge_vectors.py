"""The knowledge chunks' vector index: sqlite-vec's `vec0` on SQLite, pgvector on Postgres, one table per
vector width (`knowledge_vectors_<dims>`), each row a chunk's id, its base's id and its vector.

The index lives in the same transactions as the chunks (`keep_in_step`), so a rolled-back write (a file
whose ingestion failed) leaves no row behind. `knowledge_bases.vector_version` says which of the base's
versions the rows match; a search reads the index only when it matches `version`, and ranks exactly
otherwise (rows written by a process that lacked the extension). Vectors are stored unit length, so the
L2 order sqlite-vec uses is the cosine order; pgvector ranks by its cosine distance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.store.tables import knowledge_bases as bases
from taskgate.store.tables import knowledge_chunks as chunks

if TYPE_CHECKING:
    import numpy as np  # only the vectors callers pass in: a worker that never searches does not load it

TABLE_PREFIX = "knowledge_vectors_"
_TABLE_NAME = re.compile(r"knowledge_vectors_[0-9]+")
SQLITE_VEC_MAX_DIMS = 8192  # vec0's limit on a float column's width
PG_VECTOR_MAX_DIMS = 16000  # pgvector's limit on `vector(n)`
PG_HNSW_MAX_DIMS = 2000  # and on an HNSW index over it: wider vectors are scanned exactly
PG_MIN_EF_SEARCH = 40  # pgvector's default candidate list; a larger `limit` widens it
PG_MAX_EF_SEARCH = 1000
_IDS_PER_STATEMENT = 500


def table_name(dims: int) -> str:
    return f"{TABLE_PREFIX}{dims}"


class VectorIndex(Protocol):
    """Rows of chunk vectors by base, searched for the nearest to a vector."""

    name: str

    def supports(self, dims: int) -> bool: ...
    def add(self, conn: Connection, base_id: str, rows: Sequence[tuple[int, bytes]]) -> None: ...
    def remove(self, conn: Connection, chunk_ids: Sequence[int]) -> None: ...
    def remove_base(self, conn: Connection, base_id: str) -> None: ...
    def nearest(self, conn: Connection, base_id: str, vector: np.ndarray, limit: int) -> list[int]: ...


def _by_width(rows: Sequence[tuple[int, bytes]]) -> dict[int, list[tuple[int, bytes]]]:
    grouped: dict[int, list[tuple[int, bytes]]] = {}
    for chunk_id, blob in rows:
        grouped.setdefault(len(blob) // 4, []).append((chunk_id, blob))
    return grouped


def _batches(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[start:start + _IDS_PER_STATEMENT]) for start in range(0, len(ids), _IDS_PER_STATEMENT)]


class SqliteVecIndex:
    """vec0 tables with the base's id as a partition key, so a search reads only that base's vectors."""

    name = "sqlite-vec"

    def supports(self, dims: int) -> bool:
        return 0 < dims <= SQLITE_VEC_MAX_DIMS

    def _tables(self, conn: Connection) -> list[str]:
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "AND name GLOB 'knowledge_vectors_[0-9]*' AND sql LIKE 'CREATE VIRTUAL TABLE%'")
        return [name for (name,) in rows if _TABLE_NAME.fullmatch(name)]

    def add(self, conn: Connection, base_id: str, rows: Sequence[tuple[int, bytes]]) -> None:
        for dims, group in _by_width(rows).items():
            if not self.supports(dims):
                continue
            table = table_name(dims)
            conn.exec_driver_sql(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0(chunk_id INTEGER PRIMARY KEY, "
                                 f"knowledge_base_id TEXT PARTITION KEY, embedding FLOAT[{dims}] distance_metric=L2)")
            # SQLite hands a deleted chunk's id to the next one; a row left by a delete made outside
            # the store (by hand, without the extension) must not block the new chunk's row
            self._remove_from(conn, table, [chunk_id for chunk_id, _ in group])
            conn.exec_driver_sql(f"INSERT INTO {table} (chunk_id, knowledge_base_id, embedding) VALUES (?, ?, ?)",
                                 [(chunk_id, base_id, blob) for chunk_id, blob in group])

    def remove(self, conn: Connection, chunk_ids: Sequence[int]) -> None:
        if not chunk_ids:
            return
        for table in self._tables(conn):
            self._remove_from(conn, table, chunk_ids)

    def _remove_from(self, conn: Connection, table: str, chunk_ids: Sequence[int]) -> None:
        for batch in _batches(chunk_ids):
            marks = ", ".join("?" * len(batch))
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE chunk_id IN ({marks})", tuple(batch))

    def remove_base(self, conn: Connection, base_id: str) -> None:
        for table in self._tables(conn):
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE knowledge_base_id = ?", (base_id,))

    def nearest(self, conn: Connection, base_id: str, vector: np.ndarray, limit: int) -> list[int]:
        table = table_name(vector.shape[0])
        if table not in self._tables(conn):
            return []
        rows = conn.exec_driver_sql(
            f"SELECT chunk_id, distance FROM {table} WHERE embedding MATCH ? AND k = ? AND knowledge_base_id = ? "
            "ORDER BY distance", (vector.astype("<f4").tobytes(), limit, base_id)).all()
        # equal distances in chunk order, as the exact search breaks its ties (vec0 allows one ORDER BY term)
        return [int(chunk_id) for chunk_id, _ in sorted(rows, key=lambda row: (row[1], row[0]))]


def _pg_literal(blob: bytes) -> str:
    """pgvector's text form of a vector; float32 values print exactly with repr of their float."""
    import numpy as np

    return "[" + ",".join(repr(float(value)) for value in np.frombuffer(blob, dtype="<f4")) + "]"


class PgVectorIndex:
    """A table per width with an HNSW index (cosine), searched with pgvector's iterative scan so a base's
    filter still yields `limit` rows when other bases' vectors crowd the graph."""

    name = "pgvector"

    def supports(self, dims: int) -> bool:
        return 0 < dims <= PG_VECTOR_MAX_DIMS

    def _tables(self, conn: Connection) -> list[str]:
        rows = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                    "AND tablename ~ '^knowledge_vectors_[0-9]+$'"))
        return [name for (name,) in rows if _TABLE_NAME.fullmatch(name)]

    def _create(self, conn: Connection, dims: int) -> str:
        table = table_name(dims)
        # two writers of new bases of one width must not both create it: the second would fail
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:table))"), {"table": table})
        conn.execute(sa.text(
            f"CREATE TABLE IF NOT EXISTS {table} (chunk_id integer PRIMARY KEY "
            f"REFERENCES knowledge_chunks (id) ON DELETE CASCADE, knowledge_base_id varchar(36) NOT NULL, "
            f"embedding vector({dims}) NOT NULL)"))
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_{table}_base ON {table} (knowledge_base_id)"))
        if dims <= PG_HNSW_MAX_DIMS:
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_{table}_hnsw ON {table} "
                                 "USING hnsw (embedding vector_cosine_ops)"))
        return table

    def add(self, conn: Connection, base_id: str, rows: Sequence[tuple[int, bytes]]) -> None:
        for dims, group in _by_width(rows).items():
            if not self.supports(dims):
                continue
            table = self._create(conn, dims)
            conn.execute(sa.text(f"INSERT INTO {table} (chunk_id, knowledge_base_id, embedding) "
                                 "VALUES (:chunk_id, :base_id, CAST(:embedding AS vector))"),
                         [{"chunk_id": chunk_id, "base_id": base_id, "embedding": _pg_literal(blob)}
                          for chunk_id, blob in group])

    def remove(self, conn: Connection, chunk_ids: Sequence[int]) -> None:
        """Nothing to do: the rows go with their chunks (ON DELETE CASCADE)."""

    def remove_base(self, conn: Connection, base_id: str) -> None:
        for table in self._tables(conn):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE knowledge_base_id = :base_id"), {"base_id": base_id})

    def nearest(self, conn: Connection, base_id: str, vector: np.ndarray, limit: int) -> list[int]:
        table = table_name(vector.shape[0])
        if table not in self._tables(conn):
            return []
        ef_search = min(max(limit, PG_MIN_EF_SEARCH), PG_MAX_EF_SEARCH)
        conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {ef_search}"))
        conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = strict_order"))
        rows = conn.execute(sa.text(
            f"SELECT chunk_id FROM {table} WHERE knowledge_base_id = :base_id "
            "ORDER BY embedding <=> CAST(:vector AS vector) LIMIT :limit"),
            {"base_id": base_id, "vector": _pg_literal(vector.astype("<f4").tobytes()), "limit": limit})
        return [int(chunk_id) for (chunk_id,) in rows]


def index_for(extension: str | None) -> VectorIndex | None:
    if extension == "sqlite-vec":
        return SqliteVecIndex()
    if extension == "pgvector":
        return PgVectorIndex()
    return None


def keep_in_step(conn: Connection, index: VectorIndex | None, base_id: str, version: int,
                 removed: Sequence[int], added: Sequence[tuple[int, bytes]]) -> None:
    """After a write that took the base to `version`, removing and adding these chunks: change the
    index by as much when it matched the version before, else rebuild the base's rows from its chunks."""
    if index is None:
        return
    indexed = conn.execute(sa.select(bases.c.vector_version).where(bases.c.id == base_id)).scalar_one()
    if indexed == version - 1:
        index.remove(conn, removed)
        index.add(conn, base_id, added)
    else:
        index.remove_base(conn, base_id)
        every = conn.execute(sa.select(chunks.c.id, chunks.c.embedding).where(chunks.c.knowledge_base_id == base_id))
        index.add(conn, base_id, [(int(row.id), bytes(row.embedding)) for row in every])
    conn.execute(bases.update().where(bases.c.id == base_id).values(vector_version=version))


def indexed_versions(conn: Connection, base_id: str) -> tuple[int, int | None] | None:
    """The base's version and the one its index rows match (in step when equal); None when it is gone."""
    row = conn.execute(sa.select(bases.c.version, bases.c.vector_version).where(bases.c.id == base_id)).first()
    if row is None:
        return None
    return int(row.version), None if row.vector_version is None else int(row.vector_version)
