"""Files uploaded to knowledge bases (migration 0009): their bytes and their ingestion's state.
Blocking calls on one connection, run through `SqlKnowledgeFileStore` in the database's thread pool.

A file's text is stored as the knowledge base's document whose key is the file's id, so deleting
the file deletes that document and its chunks in the same transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.errors import BadRequestError, ConflictError
from taskgate.store.codec import utcnow
from taskgate.store.database import Database
from taskgate.store.knowledge import chunk_ids_of, mark_changed
from taskgate.store.knowledge_records import FileRecord
from taskgate.store.knowledge_vectors import VectorIndex, index_for, keep_in_step
from taskgate.store.tables import knowledge_bases as bases
from taskgate.store.tables import knowledge_documents as documents
from taskgate.store.tables import knowledge_files as files

RESERVED = "reserved"
PENDING = "pending"

_LISTED = files.c.status != RESERVED
_FIELDS = [column for column in files.c if column.name != "content"]


def _record(row: Any) -> FileRecord:
    return FileRecord(id=row.id, number=int(row.number), knowledge_base_id=row.knowledge_base_id,
                      original_filename=row.original_filename, content_type=row.content_type, size=int(row.size),
                      status=row.status, error=row.error, metadata=row.metadata, chunk_size=int(row.chunk_size),
                      chunk_overlap=int(row.chunk_overlap), created_at=row.created_at)


def _get(conn: Connection, base_id: str, file_id: str, *, listed: bool = True) -> FileRecord | None:
    condition = sa.and_(files.c.knowledge_base_id == base_id, files.c.id == file_id)
    row = conn.execute(sa.select(*_FIELDS).where(sa.and_(condition, _LISTED) if listed else condition)).first()
    return _record(row) if row is not None else None


def add_file(conn: Connection, base_id: str, file_id: str, filename: str, content_type: str,
             content: bytes | None, metadata: dict[str, Any], chunk_size: int, chunk_overlap: int) -> FileRecord:
    """A reserved file when `content` is None (its bytes come through the upload URL), else a pending one."""
    conn.execute(files.insert().values(
        id=file_id, knowledge_base_id=base_id, original_filename=filename, content_type=content_type,
        size=len(content or b""), content=content, status=RESERVED if content is None else PENDING, error=None,
        metadata=metadata, chunk_size=chunk_size, chunk_overlap=chunk_overlap, created_at=utcnow()))
    record = _get(conn, base_id, file_id, listed=False)
    assert record is not None
    return record


def put_content(conn: Connection, base_id: str, file_id: str, content: bytes) -> bool:
    """The bytes of a reserved file (replacing any sent before); False when there is no such reserved file."""
    updated = conn.execute(files.update()
                           .where(files.c.knowledge_base_id == base_id, files.c.id == file_id,
                                  files.c.status == RESERVED)
                           .values(content=content, size=len(content)))
    return bool(updated.rowcount)


def register(conn: Connection, base_id: str, file_id: str, filename: str, content_type: str,
             metadata: dict[str, Any], chunk_size: int, chunk_overlap: int) -> FileRecord | None:
    """Turn the reserved, uploaded file into a pending one; None when the base has no such file.
    ConflictError when it is registered already, BadRequestError when its bytes never came."""
    row = conn.execute(sa.select(files.c.status, files.c.content.is_(None).label("empty"))
                       .where(files.c.knowledge_base_id == base_id, files.c.id == file_id)).first()
    if row is None:
        return None
    if row.status != RESERVED:
        raise ConflictError(f"file '{file_id}' is registered already")
    if row.empty:
        raise BadRequestError(f"file '{file_id}' has not been uploaded: send its bytes to the upload URL first")
    conn.execute(files.update().where(files.c.id == file_id).values(
        original_filename=filename, content_type=content_type, metadata=metadata, chunk_size=chunk_size,
        chunk_overlap=chunk_overlap, status=PENDING))
    return _get(conn, base_id, file_id)


def content_of(conn: Connection, base_id: str, file_id: str) -> tuple[FileRecord, bytes] | None:
    """A registered file and its bytes."""
    record = _get(conn, base_id, file_id)
    if record is None:
        return None
    content = conn.execute(sa.select(files.c.content).where(files.c.id == file_id)).scalar_one()
    return record, bytes(content or b"")


def list_files(conn: Connection, base_id: str, limit: int, offset: int) -> tuple[list[FileRecord], int]:
    scope = sa.and_(files.c.knowledge_base_id == base_id, _LISTED)
    rows = conn.execute(sa.select(*_FIELDS).where(scope).order_by(files.c.number).limit(limit).offset(offset)).all()
    total = conn.execute(sa.select(sa.func.count()).select_from(files).where(scope)).scalar_one()
    return [_record(row) for row in rows], int(total)


def set_status(conn: Connection, file_id: str, status: str, error: str | None) -> bool:
    """False when the file is gone (deleted while it was ingested)."""
    return bool(conn.execute(files.update().where(files.c.id == file_id).values(status=status, error=error)).rowcount)


def unfinished(conn: Connection) -> list[tuple[str, FileRecord]]:
    """(project id, file) of every registered file whose ingestion has not ended, oldest first."""
    rows = conn.execute(sa.select(bases.c.project_id, *_FIELDS).join(bases, bases.c.id == files.c.knowledge_base_id)
                        .where(files.c.status.in_([PENDING, "processing"])).order_by(files.c.number)).all()
    return [(row.project_id, _record(row)) for row in rows]


def delete_file(conn: Connection, base_id: str, file_id: str, index: VectorIndex | None) -> bool:
    """Delete the file and its document (with its chunks and their index rows); whether the file was there."""
    version = mark_changed(conn, base_id)
    removed = chunk_ids_of(conn, base_id, documents.c.key == file_id) if index is not None else []
    conn.execute(documents.delete().where(documents.c.knowledge_base_id == base_id, documents.c.key == file_id))
    keep_in_step(conn, index, base_id, version, removed, [])
    return bool(conn.execute(files.delete().where(files.c.knowledge_base_id == base_id,
                                                  files.c.id == file_id)).rowcount)


class SqlKnowledgeFileStore:
    """The store's `KnowledgeFileStore` (store/base.py) over this module: each method one transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._index = index_for(database.vector_extension)

    async def add_file(self, base_id: str, file_id: str, filename: str, content_type: str, content: bytes | None,
                       metadata: dict[str, Any], chunk_size: int, chunk_overlap: int) -> FileRecord:
        return await self._database.write(lambda c: add_file(c, base_id, file_id, filename, content_type, content,
                                                             metadata, chunk_size, chunk_overlap))

    async def put_content(self, base_id: str, file_id: str, content: bytes) -> bool:
        return await self._database.write(lambda c: put_content(c, base_id, file_id, content))

    async def register(self, base_id: str, file_id: str, filename: str, content_type: str, metadata: dict[str, Any],
                       chunk_size: int, chunk_overlap: int) -> FileRecord | None:
        return await self._database.write(lambda c: register(c, base_id, file_id, filename, content_type, metadata,
                                                             chunk_size, chunk_overlap))

    async def get_file(self, base_id: str, file_id: str) -> FileRecord | None:
        return await self._database.read(lambda c: _get(c, base_id, file_id))

    async def content_of(self, base_id: str, file_id: str) -> tuple[FileRecord, bytes] | None:
        return await self._database.read(lambda c: content_of(c, base_id, file_id))

    async def list_files(self, base_id: str, limit: int, offset: int) -> tuple[list[FileRecord], int]:
        return await self._database.read(lambda c: list_files(c, base_id, limit, offset))

    async def set_status(self, file_id: str, status: str, error: str | None) -> bool:
        return await self._database.write(lambda c: set_status(c, file_id, status, error))

    async def delete_file(self, base_id: str, file_id: str) -> bool:
        return await self._database.write(lambda c: delete_file(c, base_id, file_id, self._index))

    async def unfinished(self) -> list[tuple[str, FileRecord]]:
        return await self._database.read(unfinished)
