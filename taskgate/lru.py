"""A least-recently-used map bounded by its number of entries and by their approximate size in bytes.

Every per-process cache keyed by something a caller chooses (a function name, a schema, a presented
key) needs both ceilings: a count alone lets a few huge entries (a 2 MB prompt each) take the
memory, and a byte budget alone lets millions of tiny ones cost their bookkeeping. Each cache says
how it sizes an entry; the estimate only has to be proportional to what the entry holds, since the
bounds are set with it in mind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

ENTRY_OVERHEAD = 100  # bytes an entry costs beyond what `sizeof` counts: the map's slot and the pair
PARSED_JSON_FACTOR = 5  # a parsed JSON value (dicts, lists, strings) takes about five times its text's bytes


class BoundedLRU(Generic[K, V]):
    """A map that forgets its least recently used entries once it holds more than `max_entries`
    entries or more than `max_bytes` bytes (each entry counted as `sizeof(key, value)` plus
    ENTRY_OVERHEAD). An entry larger than the whole byte budget is not kept at all."""

    __slots__ = ("_entries", "_sizeof", "max_bytes", "max_entries", "size_bytes")

    def __init__(self, max_entries: int, max_bytes: int, sizeof: Callable[[K, V], int]) -> None:
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._sizeof = sizeof
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size_bytes = 0

    def get(self, key: K) -> V | None:
        """The value, marked as just used; None when absent."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def peek(self, key: K) -> V | None:
        """The value without marking it used."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def replace(self, key: K, value: V) -> None:
        """`put` for an entry already here whose size does not depend on its value (a counter): the
        same result without sizing it again or evicting (nothing grew). Nothing is done when `key`
        is absent."""
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            entries[key] = (value, entry[1])
            entries.move_to_end(key)

    def put(self, key: K, value: V) -> None:
        """Keep `value` under `key` as the most recently used entry, then evict down to the bounds."""
        entries = self._entries
        size = self._sizeof(key, value) + ENTRY_OVERHEAD
        old = entries.pop(key, None)
        if old is not None:
            self.size_bytes -= old[1]
        if size > self.max_bytes:
            return
        entries[key] = (value, size)
        self.size_bytes += size
        if len(entries) > self.max_entries or self.size_bytes > self.max_bytes:
            self._evict()

    def _evict(self) -> None:
        entries = self._entries
        while len(entries) > self.max_entries or self.size_bytes > self.max_bytes:
            _, (_, size) = entries.popitem(last=False)
            self.size_bytes -= size

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.size_bytes -= entry[1]
        return entry[0]

    def drain(self) -> list[tuple[K, V]]:
        """Every entry, oldest first, leaving the map empty."""
        items = [(key, value) for key, (value, _) in self._entries.items()]
        self._entries.clear()
        self.size_bytes = 0
        return items

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
