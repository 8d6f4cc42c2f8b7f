"""v2 datasets: each function owns one, and its entries are the function's few-shot examples.

A dataset has no row of its own: its id is fixed on the function when the function is made
(`functions.dataset_id`), so finding a dataset is finding its function, scoped to the project;
another project's dataset id is not found. Entries are written and searched through the example
service, so the few-shot selection and its semantic index see every change at once.
"""

from __future__ import annotations

from typing import Any

from taskgate.engine.examples import ExampleService
from taskgate.engine.functions import FunctionService
from taskgate.errors import NotFoundError
from taskgate.store.base import ExampleRecord, FunctionRecord


class DatasetService:
    def __init__(self, functions: FunctionService, examples: ExampleService) -> None:
        self._functions = functions
        self._examples = examples

    async def owner(self, project_id: str, dataset_id: str) -> FunctionRecord:
        """The function whose dataset this is; NotFoundError when the project has no such dataset."""
        function = await self._functions.by_dataset(project_id, dataset_id)
        if function is None:
            raise NotFoundError(f"dataset '{dataset_id}' not found")
        return function

    async def add(self, project_id: str, dataset_id: str, entry: ExampleRecord) -> ExampleRecord:
        function = await self.owner(project_id, dataset_id)
        [stored] = await self._examples.add(project_id, function.id, [entry])
        return stored

    async def page(self, project_id: str, dataset_id: str, limit: int, offset: int) -> tuple[list[ExampleRecord], int]:
        """Newest first, and how many there are in all."""
        function = await self.owner(project_id, dataset_id)
        entries = await self._examples.page(project_id, function.id, limit, offset, None)
        return entries, await self._examples.count(project_id, function.id)

    async def get(self, project_id: str, dataset_id: str, entry_id: str) -> ExampleRecord:
        function = await self.owner(project_id, dataset_id)
        entry = await self._examples.get(project_id, function.id, entry_id)
        if entry is None:
            raise _missing(dataset_id, entry_id)
        return entry

    async def update(self, project_id: str, dataset_id: str, entry_id: str, changes: dict[str, Any]) -> ExampleRecord:
        function = await self.owner(project_id, dataset_id)
        entry = await self._examples.update(project_id, function.id, entry_id, changes)
        if entry is None:
            raise _missing(dataset_id, entry_id)
        return entry

    async def delete(self, project_id: str, dataset_id: str, entry_id: str) -> None:
        function = await self.owner(project_id, dataset_id)
        if not await self._examples.delete(project_id, function.id, entry_id):
            raise _missing(dataset_id, entry_id)

    async def query(self, project_id: str, dataset_id: str, text: str, limit: int) -> list[ExampleRecord]:
        """The entries closest to `text`, by the search few-shot selection uses."""
        function = await self.owner(project_id, dataset_id)
        return await self._examples.search(project_id, function.id, text, limit)


def _missing(dataset_id: str, entry_id: str) -> NotFoundError:
    return NotFoundError(f"dataset '{dataset_id}' has no entry '{entry_id}'")
