"""JSON Schema -> GBNF grammar for llama.cpp, cached per schema as written.

Converting a schema costs milliseconds of Python, and the same function's schema arrives with
every call, so conversions (and refusals) are kept in a small LRU keyed by the schema's compact
JSON in the caller's key order, bounded by entries and by bytes. The grammar makes the model write
the properties in the schema's order, so the same schema in another order is another grammar.
A schema the converter cannot express raises `GrammarUnavailable`, which the local adapter turns
into a fall-back to prompting plus a note.

llama.cpp's converter fetches a `$ref` to an `https:` URL when allowed to (llama-cpp-python
0.3 does not allow it). Every schema reaching here has passed `compile_schema`, which refuses any
reference outside the document; it is checked again before conversion, so that holds whatever
the converter's version or caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson

from taskgate.lru import BoundedLRU
from taskgate.schema_bounds import schema_refusal

CACHE_BYTES = 16 * 1024 * 1024


class GrammarUnavailable(Exception):
    """llama.cpp's grammar cannot express this schema; the reason is the message."""


def schema_key(schema: dict[str, Any]) -> bytes:
    """Whitespace must not defeat the cache; key order must not be lost (it orders the grammar)."""
    return orjson.dumps(schema)


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """Uncached conversion with llama.cpp's own converter (the one `LlamaGrammar.from_json_schema` uses)."""
    refusal = schema_refusal(schema)
    if refusal is not None:
        raise GrammarUnavailable(f"the schema {refusal}")
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        # Without prop_order the converter keeps the schema's property order, which is what the
        # model is shown in the prompt; sorted keys here would only make the output less natural.
        return str(json_schema_to_gbnf(orjson.dumps(schema).decode()))
    except Exception as exc:  # the converter signals gaps with assert/ValueError/KeyError alike
        reason = str(exc) or type(exc).__name__
        raise GrammarUnavailable(reason[:300]) from exc


def _entry_bytes(key: bytes, entry: str | GrammarUnavailable) -> int:
    return len(key) + len(str(entry))  # GBNF and reasons are ASCII, near enough


class GrammarCache:
    """A thread-safe LRU of schema -> GBNF text (or the reason it has none).

    `check`, when given, runs once per new grammar and returns a reason to refuse it (None to
    accept): the adapter uses it to let llama.cpp's own parser vet the text before sampling.
    """

    def __init__(self, maxsize: int = 256, check: Callable[[str], str | None] | None = None,
                 max_bytes: int = CACHE_BYTES):
        self._check = check
        self._entries: BoundedLRU[bytes, str | GrammarUnavailable] = BoundedLRU(maxsize, max_bytes, _entry_bytes)
        self._lock = threading.Lock()

    def get(self, schema: dict[str, Any]) -> str:
        """The GBNF for `schema`; raises GrammarUnavailable (also cached) when there is none."""
        key = schema_key(schema)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            try:
                entry = schema_to_gbnf(schema)
                if self._check is not None and (reason := self._check(entry)) is not None:
                    entry = GrammarUnavailable(reason)
            except GrammarUnavailable as exc:
                entry = exc
            self._store(key, entry)
        if isinstance(entry, GrammarUnavailable):
            raise GrammarUnavailable(str(entry))
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def _store(self, key: bytes, entry: str | GrammarUnavailable) -> None:
        with self._lock:
            self._entries.put(key, entry)
