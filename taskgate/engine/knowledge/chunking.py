"""Cutting a document into chunks of at most `chunk_size` characters that share `chunk_overlap`
characters with the one before (spec §5: `text_processing.chunk_size` 2000, `chunk_overlap` 200).

A chunk ends at the last whitespace of its second half when there is one, so words are not cut
where that can be helped; otherwise exactly at `chunk_size`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CHUNK_SIZE = 2000
DEFAULT_CHUNK_OVERLAP = 200


@dataclass(frozen=True, slots=True)
class Chunking:
    size: int = DEFAULT_CHUNK_SIZE
    overlap: int = DEFAULT_CHUNK_OVERLAP


def split(text: str, chunking: Chunking) -> list[str]:
    """The chunks of `text`, blank ones left out; `chunking` is already checked (0 <= overlap < size)."""
    text = text.strip()
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + chunking.size, len(text))
        if end < len(text):
            half = start + chunking.size // 2
            cut = max(text.rfind(" ", half, end), text.rfind("\n", half, end))
            if cut > start:
                end = cut
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        if end >= len(text):
            break
        start = max(end - chunking.overlap, start + 1)
    return pieces
