"""Cutting a document into chunks of at most `chunk_size` characters that share up to `chunk_overlap`
characters with the one before (spec §5: `text_processing.chunk_size` 2000, `chunk_overlap` 200).

The cutting is langchain-text-splitters' recursive character splitter: it breaks at paragraphs first,
then lines, then spaces, and only cuts inside a word when a word alone is longer than a chunk.
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
    from langchain_text_splitters import RecursiveCharacterTextSplitter  # 35 MB: loaded by the first chunking

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunking.size, chunk_overlap=chunking.overlap,
                                              length_function=len, strip_whitespace=True)
    return [piece for piece in splitter.split_text(text) if piece.strip()]
