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
