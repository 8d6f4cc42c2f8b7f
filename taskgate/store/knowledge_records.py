"""What the knowledge store reads and writes (store/knowledge.py; the interface is `KnowledgeStore` in
store/base.py). A leaf: it imports nothing from taskgate, so both can use it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class KnowledgeBaseRecord:
    id: str
    project_id: str
    name: str
    embedding_model: str
    created_at: datetime
    count: int = 0  # documents in it (filled by reads of one knowledge base)


@dataclass(slots=True)
class DocumentRecord:
    id: str
    key: str
    metadata: dict[str, Any]
    segments: list[tuple[int, str]]  # (chunk id, text), in order


@dataclass(slots=True)
class NewChunk:
    content: str
    vector: bytes  # little-endian float32, unit length


@dataclass(slots=True)
class ChunkHit:
    """A chunk found by a search, with its document's key and metadata."""

    chunk_id: int
    document_id: str
    key: str
    content: str
    metadata: dict[str, Any]


@dataclass(slots=True)
class FileRecord:
    """A file uploaded to a knowledge base (its bytes are read apart: `file_content`)."""

    id: str
    number: int  # the integer `document_id` of the v2 wire
    knowledge_base_id: str
    original_filename: str
    content_type: str
    size: int
    status: str  # reserved (upload URL given, not registered), pending, processing, completed, failed
    error: str | None
    metadata: dict[str, Any]
    chunk_size: int
    chunk_overlap: int
    created_at: datetime
