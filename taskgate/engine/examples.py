"""A function's stored few-shot examples (v2 dataset entries): the only way in, so what the engine
remembers about them stays true.

The selector (`taskgate.engine.fewshot`) remembers which functions have no examples, to spare
calls a database trip. Adding examples through here tells it at once, so the very next call of
that function sees them; and each written input is embedded for semantic search
(`taskgate.engine.entry_search`) when a dataset embedding model is configured; the other replicas'
selectors hear of the addition through a change notice (`replicas.notices`). Nobody else has to
remember to.
"""

from __future__ import annotations

from typing import Any

from taskgate.engine.entry_search import EntrySearch
from taskgate.engine.fewshot import ExampleSelector
from taskgate.engine.task import Example
from taskgate.replicas.notices import ChangeNotices
from taskgate.store.base import ExampleRecord, Store


class ExampleService:
    def __init__(self, store: Store, search: EntrySearch | None = None, notices: ChangeNotices | None = None) -> None:
        self._store = store
        self._search = search or EntrySearch(store)
        self._notices = notices or ChangeNotices()
        self._selector = ExampleSelector(store, search=self._search, notices=self._notices)

    async def add(self, project_id: str, function_id: str, examples: list[ExampleRecord]) -> list[ExampleRecord]:
        """Store the examples, then embed their inputs; the next selection for the function sees them."""
        stored = await self._store.add_examples(project_id, function_id, examples)
        self._selector.changed(function_id)
        await self._notices.announce("examples", project_id, function_id)
        await self._search.index(project_id, stored)
        return stored

    async def page(self, project_id: str, function_id: str, limit: int, offset: int,
                   tag: str | None) -> list[ExampleRecord]:
        return await self._store.list_examples(project_id, function_id, limit=limit, offset=offset, tag=tag)

    async def count(self, project_id: str, function_id: str) -> int:
        return await self._store.count_examples(project_id, function_id)

    async def get(self, project_id: str, function_id: str, example_id: str) -> ExampleRecord | None:
        return await self._store.get_example(project_id, function_id, example_id)

    async def update(self, project_id: str, function_id: str, example_id: str,
                     changes: dict[str, Any]) -> ExampleRecord | None:
        """Change an example's fields; a new input is embedded again."""
        updated = await self._store.update_example(project_id, function_id, example_id, changes)
        if updated is not None and "input" in changes:
            await self._search.index(project_id, [updated])
        return updated

    async def delete(self, project_id: str, function_id: str, example_id: str) -> bool:
        """Fewer examples never make a function empty in the selector's memory: nothing to tell it."""
        return await self._store.delete_example(project_id, function_id, example_id)

    async def search(self, project_id: str, function_id: str, value: Any, limit: int) -> list[ExampleRecord]:
        """Up to `limit` of the function's examples, the closest to `value` first."""
        return await self._search.search(project_id, function_id, value, limit)

    async def select(self, project_id: str, function_id: str, task_input: Any, count: int) -> list[Example]:
        """Up to `count` of the function's examples, the ones closest to `task_input` first."""
        return await self._selector.select(project_id, function_id, task_input, count)
