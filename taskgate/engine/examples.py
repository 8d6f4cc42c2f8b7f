"""A function's stored few-shot examples: the only way in, so the selector's memory stays true.

The selector (`taskgate.engine.fewshot`) remembers which functions have no examples, to spare
calls a database trip. Adding examples through here tells it at once, so the very next call of
that function sees them; nobody else has to remember to.
"""

from __future__ import annotations

from typing import Any

from taskgate.engine.fewshot import ExampleSelector
from taskgate.engine.task import Example
from taskgate.store.base import ExampleRecord, Store


class ExampleService:
    def __init__(self, store: Store, selector: ExampleSelector | None = None) -> None:
        self._store = store
        self._selector = selector or ExampleSelector(store)

    async def add(self, project_id: str, function_id: str, examples: list[ExampleRecord]) -> list[ExampleRecord]:
        """Store the examples; the next selection for the function sees them."""
        stored = await self._store.add_examples(project_id, function_id, examples)
        self._selector.changed(function_id)
        return stored

    async def page(self, project_id: str, function_id: str, limit: int, offset: int,
                   tag: str | None) -> list[ExampleRecord]:
        return await self._store.list_examples(project_id, function_id, limit=limit, offset=offset, tag=tag)

    async def delete(self, project_id: str, function_id: str, example_id: str) -> bool:
        """Fewer examples never make a function empty in the selector's memory: nothing to tell it."""
        return await self._store.delete_example(project_id, function_id, example_id)

    async def select(self, project_id: str, function_id: str, task_input: Any, count: int) -> list[Example]:
        """Up to `count` of the function's examples, the ones closest to `task_input` first."""
        return await self._selector.select(project_id, function_id, task_input, count)
