"""Files in knowledge bases: reserving an upload, receiving the bytes, registering, listing,
downloading and deleting them, and ingesting them off the request path.

A registered file is `pending` until its ingestion task starts (`processing`); the task reads the
file's text (`parsing`) in a worker thread and adds it through the knowledge service as the
document whose key is the file's id, in one transaction, so a file is searchable whole or not at
all. It ends `completed`, or `failed` with the reason in `error`. INGESTIONS_AT_ONCE run at a time
(parsing and embedding are CPU work); the rest wait as `pending`. A server that stops mid-way
leaves its files `pending` or `processing`, and the next start ingests them again (`resume`):
adding a document under the file's key replaces whatever an earlier attempt stored.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from taskgate.engine.knowledge.chunking import Chunking
from taskgate.engine.knowledge.file_urls import DOWNLOAD, UPLOAD, FileUrlSigner, Grant
from taskgate.engine.knowledge.parsing import CONTENT_TYPES, UnreadableFileError, format_of, text_of
from taskgate.engine.knowledge.service import KnowledgeService
from taskgate.errors import BadRequestError, NotFoundError, TaskgateError
from taskgate.ids import new_id
from taskgate.store.base import Store
from taskgate.store.knowledge_records import FileRecord

PROCESSING, COMPLETED, FAILED = "processing", "completed", "failed"
MAX_FILENAME_CHARS = 300
INGESTIONS_AT_ONCE = 2

log = logging.getLogger("taskgate.knowledge.files")


@dataclass(frozen=True, slots=True)
class NewFile:
    filename: str
    content_type: str | None
    metadata: dict[str, Any]
    chunking: Chunking


def file_name(raw: str) -> str:
    """The name to keep for an uploaded file: its last path segment (a name is a label here, never
    a path), 1 to MAX_FILENAME_CHARS printable characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", "..") or len(name) > MAX_FILENAME_CHARS or not name.isprintable():
        raise BadRequestError(f"the file name must end in 1 to {MAX_FILENAME_CHARS} printable characters, "
                              f"got {raw[:100]!r}")
    return name


class KnowledgeFiles:
    def __init__(self, store: Store, knowledge: KnowledgeService, signer: FileUrlSigner) -> None:
        self._files = store.knowledge_files
        self._knowledge = knowledge
        self._signer = signer
        self._ingesting: set[asyncio.Task[None]] = set()
        self._turns = asyncio.Semaphore(INGESTIONS_AT_ONCE)

    # ---- uploads

    async def reserve(self, project_id: str, base_id: str, filename: str) -> tuple[FileRecord, str]:
        """A file awaiting its bytes, and the token of its upload URL."""
        base = await self._knowledge.get(project_id, base_id)
        name = file_name(filename)
        file_format = format_of(name, None)
        record = await self._files.add_file(base.id, new_id(), name, CONTENT_TYPES[file_format], None, {},
                                            Chunking().size, Chunking().overlap)
        return record, self._signer.token(Grant(UPLOAD, project_id, base.id, record.id))

    async def receive(self, token: str, base_id: str, file_id: str, content: bytes) -> None:
        """The bytes sent to an upload URL."""
        project_id = self._signer.project_of(token, UPLOAD, base_id, file_id)
        await self._knowledge.get(project_id, base_id)
        if not await self._files.put_content(base_id, file_id, content):
            raise NotFoundError(f"file '{file_id}' is not awaiting an upload")

    async def register(self, project_id: str, base_id: str, file_id: str, new: NewFile) -> FileRecord:
        base = await self._knowledge.get(project_id, base_id)
        name = file_name(new.filename)
        file_format = format_of(name, new.content_type)
        record = await self._files.register(base.id, file_id, name, new.content_type or CONTENT_TYPES[file_format],
                                            new.metadata, new.chunking.size, new.chunking.overlap)
        if record is None:
            raise NotFoundError(f"knowledge base '{base_id}' has no file '{file_id}'")
        self._start(project_id, record)
        return record

    async def upload(self, project_id: str, base_id: str, new: NewFile, content: bytes) -> FileRecord:
        base = await self._knowledge.get(project_id, base_id)
        name = file_name(new.filename)
        file_format = format_of(name, new.content_type, content)
        record = await self._files.add_file(base.id, new_id(), name, CONTENT_TYPES[file_format], content,
                                            new.metadata, new.chunking.size, new.chunking.overlap)
        self._start(project_id, record)
        return record

    # ---- reading and deleting

    async def page(self, project_id: str, base_id: str, limit: int, offset: int) -> tuple[list[FileRecord], int]:
        base = await self._knowledge.get(project_id, base_id)
        return await self._files.list_files(base.id, limit, offset)

    async def download_token(self, project_id: str, base_id: str, file_id: str) -> str:
        base = await self._knowledge.get(project_id, base_id)
        if await self._files.get_file(base.id, file_id) is None:
            raise NotFoundError(f"knowledge base '{base_id}' has no file '{file_id}'")
        return self._signer.token(Grant(DOWNLOAD, project_id, base.id, file_id))

    async def download(self, token: str, base_id: str, file_id: str) -> tuple[FileRecord, bytes]:
        project_id = self._signer.project_of(token, DOWNLOAD, base_id, file_id)
        base = await self._knowledge.get(project_id, base_id)
        found = await self._files.content_of(base.id, file_id)
        if found is None:
            raise NotFoundError(f"knowledge base '{base_id}' has no file '{file_id}'")
        return found

    async def delete(self, project_id: str, base_id: str, file_id: str) -> None:
        """The file, and its document and chunks."""
        base = await self._knowledge.get(project_id, base_id)
        if not await self._files.delete_file(base.id, file_id):
            raise NotFoundError(f"knowledge base '{base_id}' has no file '{file_id}'")

    async def resume(self) -> None:
        """Ingest again the files a stopped server left unfinished."""
        for project_id, record in await self._files.unfinished():
            self._start(project_id, record)

    async def close(self) -> None:
        """Stop the ingestions under way (their files stay `processing` or `pending`)."""
        for task in list(self._ingesting):
            task.cancel()
        await asyncio.gather(*self._ingesting, return_exceptions=True)

    # ---- ingestion

    def _start(self, project_id: str, record: FileRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._ingest(project_id, record))
        self._ingesting.add(task)
        task.add_done_callback(self._ingesting.discard)

    async def _ingest(self, project_id: str, record: FileRecord) -> None:
        async with self._turns:
            await self._ingest_now(project_id, record)

    async def _ingest_now(self, project_id: str, record: FileRecord) -> None:
        base_id, file_id = record.knowledge_base_id, record.id
        try:
            if not await self._files.set_status(file_id, PROCESSING, None):
                return  # deleted before it started
            found = await self._files.content_of(base_id, file_id)
            if found is None:
                return
            file_format = format_of(record.original_filename, record.content_type)
            text = await asyncio.to_thread(text_of, file_format, found[1])
            await self._knowledge.add(project_id, base_id, text, file_id, record.metadata,
                                      Chunking(record.chunk_size, record.chunk_overlap))
        except (UnreadableFileError, TaskgateError) as exc:
            await self._files.set_status(file_id, FAILED, exc.detail if isinstance(exc, TaskgateError) else str(exc))
            return
        except Exception:
            log.exception("ingesting knowledge file %s failed", file_id)
            await self._files.set_status(file_id, FAILED, "internal error while ingesting the file")
            return
        if not await self._files.set_status(file_id, COMPLETED, None):
            await self._files.delete_file(base_id, file_id)  # deleted while it was ingested: drop its document
