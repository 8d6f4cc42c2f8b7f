"""Stored functions and their revisions: the only way in, so what this process remembers stays true.

Calls keep the stored function in step with what they send, without a database trip per call:
each process remembers the definition it last stored per function, and only a changed definition
(new instructions, schemas, model or configuration) goes to the store, which adds a revision.
What it remembers is bounded by count and by bytes (callers choose the names and send prompts of
megabytes): a function it has forgotten costs its next call one trip to the store, nothing more.

The function API's writes (a new prompt, a revert, a delete) go through here too, and each one
drops what was remembered of that function, so the next call compares with the store again; each
write, a call's new revision included, is announced to the other replicas (`replicas.notices`),
which drop theirs when the notice arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, fields, replace
from typing import Any

from taskgate.engine.models import parse_model_field
from taskgate.engine.schemas import as_written, canonical
from taskgate.engine.task import DEFAULT_INSTRUCTIONS, DEFAULT_MAX_ATTEMPTS, Task, TaskConfig
from taskgate.lru import PARSED_JSON_FACTOR, BoundedLRU
from taskgate.replicas.notices import ChangeNotices
from taskgate.store.base import FunctionDefinition, FunctionRecord, RevisionRecord, Store

FunctionKey = tuple[str, str]  # (project id, function name)
Known = tuple[bytes, FunctionRecord, float]  # (fingerprint, record, trusted until)

KNOWN_MAX_ENTRIES = 10_000
KNOWN_MAX_BYTES = 64 * 1024 * 1024
HITS_MAX_ENTRIES = 10_000
HITS_MAX_BYTES = 4 * 1024 * 1024


def definition_of(task: Task) -> FunctionDefinition:
    return FunctionDefinition(
        instructions=task.instructions,
        input_schema=task.input_schema,
        output_schema=task.output_schema,
        model=[{"name": m.name, "options": m.options} for m in task.models] or None,
        configuration=stored_configuration(task.config),
    )


def stored_configuration(config: TaskConfig) -> dict[str, Any]:
    """A call's settings as a definition keeps them. An unset max_attempts is stored as the spec's
    default, as it always was, and XML mode only when it is on, so that functions stored before
    either existed do not get a new revision for it."""
    stored = asdict(replace(config, max_attempts=config.max_attempts or DEFAULT_MAX_ATTEMPTS))
    if not config.xml_mode:
        del stored["xml_mode"]
    return stored


def config_of(definition: FunctionDefinition) -> TaskConfig:
    """The call settings a definition holds, as `definition_of` stored them (defaults for the rest)."""
    stored = definition.configuration or {}
    return TaskConfig(**{item.name: stored[item.name] for item in fields(TaskConfig) if item.name in stored})


def merged_definition(task: Task, before: FunctionRecord | None) -> FunctionDefinition:
    """What a call by name stores: its own definition, keeping from the function as it was what a call
    does not set. That is its description; its few-shot count (spec §5: a function's setting, which
    `/call` ignores); and its model as written, when the call names the same models."""
    definition = definition_of(task)
    if before is None:
        return definition
    kept = before.definition
    definition.description = kept.description
    definition.configuration["few_shot_count"] = before.few_shot_count
    if kept.model is not None and parse_model_field(kept.model) == task.models:
        definition.model = kept.model
    return definition


def at_revision(record: FunctionRecord, revision: RevisionRecord) -> FunctionRecord:
    """The function as it was at `revision`: that revision's definition, id and few-shot count."""
    if revision.is_current:
        return record
    return replace(record, definition=revision.definition, revision_id=revision.id, revision_number=revision.number,
                   schema_hash=revision.schema_hash, few_shot_count=config_of(revision.definition).few_shot_count)


def fingerprint(task: Task) -> bytes:
    """The versioned fields of a task as bytes; cheap, because it runs on every call. The schemas
    as written: the same schema in another property order is another definition."""
    config = task.config
    return canonical((
        task.instructions,
        [(m.name, m.options) for m in task.models],
        (config.cache_ttl, config.max_attempts, config.few_shot_count, config.validate_input, config.xml_mode),
    )) + as_written((task.input_schema, task.output_schema))


def _known_size(key: FunctionKey, known: Known) -> int:
    """The fingerprint's bytes, plus the record: its prompt as text and its schemas parsed."""
    fingerprint, record, _ = known
    structured = max(len(fingerprint) - len(record.definition.instructions), 0)
    return len(key[0]) + len(key[1]) + 2 * len(fingerprint) + (PARSED_JSON_FACTOR - 1) * structured


def _key_size(key: FunctionKey, _: int) -> int:
    return len(key[0]) + len(key[1])


class FunctionService:
    """What this process knows is trusted until another replica's change notice drops it; without
    notices (no Redis, or its subscription lost), for `recheck_s` seconds, after which the next
    call compares with the store again."""

    def __init__(self, store: Store, recheck_s: float = 5.0, *, max_entries: int = KNOWN_MAX_ENTRIES,
                 max_bytes: int = KNOWN_MAX_BYTES, notices: ChangeNotices | None = None) -> None:
        self._store = store
        self._recheck_s = recheck_s
        self._notices = notices or ChangeNotices()
        self._notices.on("function", self._changed_elsewhere)
        self._notices.on_reset(self._forget_all)
        self._known: BoundedLRU[FunctionKey, Known] = BoundedLRU(max_entries, max_bytes, _known_size)
        self._locks: dict[FunctionKey, tuple[asyncio.Lock, int]] = {}  # only while a call holds or awaits one
        self._hits: BoundedLRU[FunctionKey, int] = self._new_hits()

    @staticmethod
    def _new_hits() -> BoundedLRU[FunctionKey, int]:
        """Calls counted since the last flush; under a flood of new names the least used lose their count."""
        return BoundedLRU(HITS_MAX_ENTRIES, HITS_MAX_BYTES, _key_size)

    @property
    def known_bytes(self) -> int:
        """The approximate bytes of what this process remembers about functions."""
        return self._known.size_bytes

    async def ensure(self, task: Task) -> tuple[FunctionRecord, bool]:
        """The function's record, and whether its current revision already existed (v3 `script_cached`)."""
        key = (task.project_id, task.function_name)
        hits = self._hits.peek(key)
        if hits is None:
            self._hits.put(key, 1)
        else:
            self._hits.replace(key, hits + 1)  # an entry's size is its key's (`_key_size`): no resizing
        if task.stored is not None:  # called as stored: nothing to compare or write
            return task.stored, True
        current = fingerprint(task)
        if (known := self._fresh(key, current)) is not None:
            return known, True
        async with self._locked(key):
            if (known := self._fresh(key, current)) is not None:
                return known, True
            before = await self._store.get_function(task.project_id, task.function_name)
            record = await self._store.upsert_function(task.project_id, task.function_name,
                                                       merged_definition(task, before))
            self._known.put(key, (current, record, time.monotonic() + self._notices.window(self._recheck_s)))
            existed = before is not None and before.revision_id == record.revision_id
            if not existed:
                await self._notices.announce("function", task.project_id, task.function_name)
            return record, existed

    @contextlib.asynccontextmanager
    async def _locked(self, key: FunctionKey) -> AsyncIterator[None]:
        """One writer per function at a time; the lock is dropped once nobody holds or awaits it."""
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def _fresh(self, key: FunctionKey, current: bytes) -> FunctionRecord | None:
        known = self._known.get(key)
        if known is not None and known[0] == current and known[2] > time.monotonic():
            return known[1]
        return None

    async def current(self, project_id: str, name: str) -> FunctionRecord | None:
        """The stored function as this process last saw it, asking the store when it has not or when
        its trust has run out (another replica may have changed it meanwhile)."""
        known = self._known.get((project_id, name))
        if known is not None and known[2] > time.monotonic():
            return known[1]
        return await self._store.get_function(project_id, name)

    # ---- the function API: reads go to the store, writes also drop what was remembered

    async def get(self, project_id: str, name: str) -> FunctionRecord | None:
        """The stored function as it is now (with its hit count), for showing it."""
        return await self._store.get_function(project_id, name)

    async def page(self, project_id: str, limit: int, offset: int) -> list[FunctionRecord]:
        return await self._store.list_functions(project_id, limit=limit, offset=offset)

    async def revisions(self, project_id: str, name: str) -> list[RevisionRecord]:
        return await self._store.list_revisions(project_id, name)

    async def revision(self, project_id: str, name: str, number: int) -> RevisionRecord | None:
        return await self._store.get_revision(project_id, name, number)

    async def revision_by_id(self, project_id: str, name: str, revision_id: str) -> RevisionRecord | None:
        """A revision of the live function `name` by its id (a span's record of what its call ran with);
        None when either is gone."""
        record = await self._store.get_function(project_id, name)
        if record is None:
            return None
        return await self._store.get_revision_by_id(project_id, record.id, revision_id)

    async def get_or_create(self, project_id: str, name: str) -> FunctionRecord:
        """The function, created with the default prompt if it does not exist yet (so examples can
        be added before its first call)."""
        async with self._locked((project_id, name)):
            record = await self._store.get_function(project_id, name)
            if record is None:
                record = await self._store.upsert_function(project_id, name,
                                                           FunctionDefinition(instructions=DEFAULT_INSTRUCTIONS))
                await self._forget(project_id, name)
            return record

    async def set_instructions(self, project_id: str, name: str, instructions: str) -> FunctionRecord | None:
        """A new revision with this prompt and the rest of the current definition; None when there
        is no such function."""
        async with self._locked((project_id, name)):
            record = await self._store.get_function(project_id, name)
            if record is None:
                return None
            updated = await self._store.upsert_function(project_id, name,
                                                        replace(record.definition, instructions=instructions))
            await self._forget(project_id, name)
            return updated

    async def revert(self, project_id: str, name: str, number: int) -> FunctionRecord | None:
        """A new revision with revision `number`'s definition; None when there is no such revision."""
        async with self._locked((project_id, name)):
            reverted = await self._store.revert_function(project_id, name, number)
            await self._forget(project_id, name)
            return reverted

    async def delete(self, project_id: str, name: str) -> bool:
        async with self._locked((project_id, name)):
            deleted = await self._store.delete_function(project_id, name)
            await self._forget(project_id, name)
            return deleted

    # ---- the v2 function API: functions by id (their names may change), created and changed whole

    async def by_id(self, project_id: str, function_id: str) -> FunctionRecord | None:
        return await self._store.get_function_by_id(project_id, function_id)

    async def by_dataset(self, project_id: str, dataset_id: str) -> FunctionRecord | None:
        return await self._store.get_function_by_dataset(project_id, dataset_id)

    async def listing(self, project_id: str, name: str | None, sort: str, limit: int,
                      offset: int) -> tuple[list[FunctionRecord], int]:
        return await self._store.list_functions_page(project_id, name, sort, limit, offset)

    async def create(self, project_id: str, name: str, definition: FunctionDefinition,
                     few_shot_count: int) -> FunctionRecord:
        """A new function (ConflictError when the name is taken)."""
        async with self._locked((project_id, name)):
            created = await self._store.create_function(project_id, name, definition, few_shot_count)
            await self._forget(project_id, name)
            return created

    async def update(self, project_id: str, current: FunctionRecord, name: str, definition: FunctionDefinition,
                     few_shot_count: int) -> FunctionRecord | None:
        """Rename `current` to `name` (ConflictError when taken) and give it `definition` (a new
        revision when that changed) and `few_shot_count`; None when it is gone meanwhile."""
        async with self._locked((project_id, current.name)):
            updated = await self._store.update_function(project_id, current.id, name, definition, few_shot_count)
            await self._forget(project_id, current.name)
            await self._forget(project_id, name)
            return updated

    async def delete_by_id(self, project_id: str, function_id: str) -> bool:
        record = await self.by_id(project_id, function_id)
        return record is not None and await self.delete(project_id, record.name)

    async def revisions_page(self, project_id: str, function_id: str, limit: int,
                             offset: int) -> tuple[list[RevisionRecord], int] | None:
        return await self._store.list_revisions_page(project_id, function_id, limit, offset)

    async def at_revision(self, project_id: str, function_id: str, revision_id: str) -> FunctionRecord | None:
        """The function as it was at that revision (see `at_revision`); None when either is unknown."""
        record = await self.by_id(project_id, function_id)
        if record is None:
            return None
        revision = await self._store.get_revision_by_id(project_id, function_id, revision_id)
        return at_revision(record, revision) if revision is not None else None

    async def _forget(self, project_id: str, name: str) -> None:
        """Inside the function's lock, so a call storing its definition meanwhile cannot put back
        what it knew before this write; the other replicas are told to forget it too."""
        self._known.pop((project_id, name))
        await self._notices.announce("function", project_id, name)

    async def _changed_elsewhere(self, project_id: str, name: str) -> None:
        """Another replica wrote the function. Under its lock, so a call here that read the store
        before that write cannot put the old definition back after this."""
        async with self._locked((project_id, name)):
            self._known.pop((project_id, name))

    def _forget_all(self) -> None:
        self._known.drain()

    async def flush_hits(self) -> None:
        """Add the calls counted since the last flush to each function's `hit_count`, one write per function."""
        hits, self._hits = self._hits, self._new_hits()
        for (project_id, name), count in hits.drain():
            await self._store.record_function_hits(project_id, name, count)
