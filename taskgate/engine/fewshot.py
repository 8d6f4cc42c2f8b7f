"""Picking a function's stored examples to show the model as few-shot demonstrations.

The examples closest to the call's input are chosen by the same search the v2 dataset query
endpoint answers with (`taskgate.engine.entry_search`): by meaning when a dataset embedding model is
configured, else by the store's full-text ranking, filled up with the newest examples.
"""

from __future__ import annotations

import time
from typing import Any

from taskgate.engine.entry_search import EntrySearch, query_text
from taskgate.engine.task import Example
from taskgate.lru import BoundedLRU
from taskgate.replicas.notices import ChangeNotices
from taskgate.store.base import Store

__all__ = ["EMPTY_ENTRIES", "ExampleSelector", "query_text"]

EMPTY_ENTRIES = 10_000


class ExampleSelector:
    """Chooses a call's demonstrations, remembering which functions have none.

    Most functions never get stored examples, and asking the store on every call would cost a
    database round trip per call. A function found empty is not asked again until examples are
    added to it: by this process (`ExampleService` calls `changed`), or by another replica, whose
    change notice arrives at once. Without notices (no Redis, or its subscription lost) another
    replica's new examples show up within `empty_ttl_s` seconds instead.
    """

    def __init__(self, store: Store, empty_ttl_s: float = 5.0, remembered: int = EMPTY_ENTRIES,
                 search: EntrySearch | None = None, notices: ChangeNotices | None = None) -> None:
        self._search = search or EntrySearch(store)
        self._empty_ttl_s = empty_ttl_s
        self._notices = notices or ChangeNotices()
        self._notices.on("examples", self._changed_elsewhere)
        self._notices.on_reset(self._forget_all)
        # Function ids the store knows (so bounded by what exists), but every function ever called
        # would stay: the latest ones are enough to spare the round trips.
        self._empty_until: BoundedLRU[str, float] = BoundedLRU(remembered, remembered * 200,
                                                               lambda key, _: len(key) + 50)

    def changed(self, function_id: str) -> None:
        """The function has new examples: ask the store on its next call."""
        self._empty_until.pop(function_id)

    async def _changed_elsewhere(self, _project_id: str, function_id: str) -> None:
        self.changed(function_id)

    def _forget_all(self) -> None:
        self._empty_until.drain()

    async def select(self, project_id: str, function_id: str, task_input: Any, count: int) -> list[Example]:
        """Up to `count` stored examples of the function, the ones closest to `task_input` first."""
        if count <= 0 or (self._empty_until.peek(function_id) or 0.0) > time.monotonic():
            return []
        chosen = await self._search.search(project_id, function_id, task_input, count)
        if not chosen:
            self._empty_until.put(function_id, time.monotonic() + self._notices.window(self._empty_ttl_s))
        # An entry's `expected` is its output as a reviewer corrected it: the better demonstration.
        return [Example(input=record.input, output=record.output if record.expected is None else record.expected,
                        comment=record.comment) for record in chosen]
