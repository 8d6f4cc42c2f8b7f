"""Picking a function's stored examples to show the model as few-shot demonstrations.

The examples closest to the call's input are chosen by the store's full-text ranking (BM25 on
SQLite FTS5, ts_rank on Postgres). Ranking only sees words, so the input is flattened to its
words first; when too few examples share a word with the input, the remaining slots are filled
with other stored examples, because a demonstration of the task still beats none (this is what a
nearest-neighbour search would do too: it always returns `count` results).
"""

from __future__ import annotations

import re
import time
from typing import Any

from taskgate.engine.task import Example
from taskgate.lru import BoundedLRU
from taskgate.store.base import ExampleRecord, Store

MAX_QUERY_TERMS = 64  # a long input would make a slow full-text query without ranking any better
_WORD = re.compile(r"\w+", re.UNICODE)


def query_text(value: Any) -> str:
    """The distinct words of an input's values, in order. Object keys are left out on purpose:
    every example of a function shares them, so they only add noise to the ranking."""
    words: dict[str, None] = {}
    for text in _texts(value):
        for word in _WORD.findall(text):
            words.setdefault(word.lower(), None)
            if len(words) >= MAX_QUERY_TERMS:
                return " ".join(words)
    return " ".join(words)


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    return [str(value)]


EMPTY_ENTRIES = 10_000


class ExampleSelector:
    """Chooses a call's demonstrations, remembering which functions have none.

    Most functions never get stored examples, and asking the store on every call would cost a
    database round trip per call. A function found empty is not asked again for `empty_ttl_s`
    seconds, or until this process adds examples to it (`ExampleService` calls `changed`); another
    replica's new examples show up within that time.
    """

    def __init__(self, store: Store, empty_ttl_s: float = 5.0, remembered: int = EMPTY_ENTRIES) -> None:
        self._store = store
        self._empty_ttl_s = empty_ttl_s
        # Function ids the store knows (so bounded by what exists), but every function ever called
        # would stay: the latest ones are enough to spare the round trips.
        self._empty_until: BoundedLRU[str, float] = BoundedLRU(remembered, remembered * 200,
                                                               lambda key, _: len(key) + 50)

    def changed(self, function_id: str) -> None:
        """The function has new examples: ask the store on its next call."""
        self._empty_until.pop(function_id)

    async def select(self, project_id: str, function_id: str, task_input: Any, count: int) -> list[Example]:
        """Up to `count` stored examples of the function, the ones closest to `task_input` first."""
        if count <= 0 or (self._empty_until.peek(function_id) or 0.0) > time.monotonic():
            return []
        query = query_text(task_input)
        chosen: list[ExampleRecord] = []
        if query:
            chosen = await self._store.search_examples(project_id, function_id, query, count)
        if len(chosen) < count:
            taken = {record.id for record in chosen}
            others = await self._store.list_examples(project_id, function_id, limit=count + len(chosen))
            chosen += [record for record in others if record.id not in taken][: count - len(chosen)]
        if not chosen:
            self._empty_until.put(function_id, time.monotonic() + self._empty_ttl_s)
        return [Example(input=record.input, output=record.output, comment=record.comment) for record in chosen]
