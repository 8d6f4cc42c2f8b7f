"""Generations (the raw provider exchanges of each call) as readers see them, and the mark that
makes a call's upstream requests captured (see `taskgate.providers.wire_capture`).

Exchanges wait in the recorder for its next batch; a read first writes what waits, so a call that
has just returned shows its exchanges at once.
"""

from __future__ import annotations

from taskgate.providers.wire_capture import CaptureScope
from taskgate.store.base import GenerationRecord, Store
from taskgate.telemetry.generations import GenerationRecorder


class GenerationService:
    def __init__(self, store: Store, recorder: GenerationRecorder | None) -> None:
        self._store = store
        self._recorder = recorder  # None: nothing is captured (an engine built without one)

    def scope(self, project_id: str, span_id: str, trace_id: str) -> CaptureScope | None:
        return None if self._recorder is None else self._recorder.scope(project_id, span_id, trace_id)

    async def flush(self) -> None:
        if self._recorder is not None:
            await self._recorder.flush()

    async def page(self, project_id: str, query: str | None, limit: int,
                   offset: int) -> tuple[list[GenerationRecord], int]:
        await self.flush()
        return await self._store.list_generations(project_id, query, limit, offset)

    async def get(self, project_id: str, generation_id: str) -> GenerationRecord | None:
        await self.flush()
        return await self._store.get_generation(project_id, generation_id)

    async def delete(self, project_id: str, generation_id: str) -> bool:
        await self.flush()  # one still waiting would otherwise be written after the delete
        return await self._store.delete_generation(project_id, generation_id)
