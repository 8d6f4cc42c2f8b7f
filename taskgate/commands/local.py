"""The data directory read in process, when no server is named: the same answers as the server's API.

The store is opened as `taskgate serve` opens it (the SQLite file of `--data-dir`, or
TASKGATE_DATABASE_URL) and read through the engine's services; each answer is shaped by the very
functions the HTTP handlers use and passed through the server's JSON encoder, so a command sees the
same body either way. Nothing is written: a store that does not exist yet is an error, not created.

Which project: the one TASKGATE_API_KEY belongs to (a key of the store, or one of
TASKGATE_API_KEYS, which belong to `default`), else `--project NAME`, else the store's only project.
Whoever can open the data directory can read every project in it, so no key is demanded; the key
only says which project is meant.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson

from taskgate.api.span_bodies import span_id, trace_item
from taskgate.api.v2.analytics import usage_item
from taskgate.api.v2.functions import list_item
from taskgate.api.v2.paging import MAX_LIMIT, paged
from taskgate.api.v3.spans import trace_body
from taskgate.commands.console import CommandError, NotFound
from taskgate.commands.reading import UsageParams
from taskgate.config import Settings
from taskgate.engine.analytics import UsageService, usage_query
from taskgate.engine.functions import FunctionService
from taskgate.engine.spans import SpanService
from taskgate.errors import NotFoundError, TaskgateError
from taskgate.server.auth import DEFAULT_PROJECT
from taskgate.server.request_io import dumps
from taskgate.store import SqlStore, open_store
from taskgate.store.accounts import key_hash
from taskgate.store.base import EventFilter
from taskgate.store.projects import project_ids
from taskgate.telemetry.recorder import SpanRecorder

T = TypeVar("T")


class LocalData:
    """One project of an open store; `open()` makes it, `close()` releases the store."""

    def __init__(self, store: SqlStore, project_id: str, where: str) -> None:
        self._store = store
        self._project_id = project_id
        self._where = where
        recorder = SpanRecorder(store)  # never started: this process records nothing, so nothing waits in it
        self._spans = SpanService(store, recorder)
        self._usage = UsageService(store, recorder)
        self._functions = FunctionService(store)

    @classmethod
    async def open(cls, settings: Settings, project: str | None) -> LocalData:
        store, where = await _open_store(settings)
        try:
            project_id = await _project(store, settings, project, where)
        except BaseException:
            await store.close()
            raise
        return cls(store, project_id, where)

    @property
    def where(self) -> str:
        return self._where

    async def close(self) -> None:
        await self._store.close()

    async def traces(self, name: str | None, limit: int, offset: int) -> dict[str, Any]:
        limit = min(limit, MAX_LIMIT)
        with _refusals():
            summaries, total = await self._spans.list_traces(self._project_id, name, limit, offset)
        return _wire({"data": [trace_item(summary) for summary in summaries],
                      "meta": {"total_count": total, "total": total, "limit": limit, "offset": offset}})

    async def trace(self, trace_id: str) -> dict[str, Any]:
        with _refusals():
            wanted = span_id(trace_id, "a trace id")
            spans = await self._spans.get_trace(self._project_id, wanted)
            if not spans:
                raise NotFoundError(f"trace '{wanted}' was not found")
        events, _ = await self._store.list_span_events(self._project_id, EventFilter(trace_id=wanted), None)
        return _wire(trace_body(wanted, spans, events))

    async def trace_of_span(self, span_id: str) -> str | None:
        span = await self._spans.find(self._project_id, span_id, wait_for_peers=False)
        return span.trace_id if span is not None else None

    async def usage(self, query: UsageParams) -> list[dict[str, Any]]:
        with _refusals():
            checked = usage_query(query.start, query.end, query.granularity, query.group_by, query.fields)
            rows = await self._usage.report(self._project_id, checked)
        return _wire([usage_item(row) for row in rows])

    async def functions(self, limit: int, offset: int) -> dict[str, Any]:
        with _refusals():
            records, total = await self._functions.listing(self._project_id, None, "name", min(limit, MAX_LIMIT),
                                                           offset)
        return _wire(paged([list_item(record) for record in records], total))


async def project_of(settings: Settings, project: str | None) -> tuple[str, str]:
    """Where the store is and the id of the project a command means (see the module's docstring);
    the store is closed again."""
    store, where = await _open_store(settings)
    try:
        return where, await _project(store, settings, project, where)
    finally:
        await store.close()


async def _open_store(settings: Settings) -> tuple[SqlStore, str]:
    where = _store_place(settings)
    try:
        store = await open_store(settings.effective_database_url)
    except Exception as exc:  # a URL it cannot use, a server that refuses, a file that is not SQLite
        raise CommandError(f"cannot open the store at {where}: {exc}") from None
    if not isinstance(store, SqlStore):
        await store.close()
        raise CommandError(f"the store at {where} cannot be read from the command line")
    return store, where


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """The engine's refusal in the words the server would send."""
    try:
        yield
    except TaskgateError as exc:
        failure = NotFound if isinstance(exc, NotFoundError) else CommandError
        raise failure(f"{exc.type_name}: {exc.detail}") from None


def _wire(body: T) -> T:
    """The body as the server would send it: through its JSON encoder (datetimes as ISO text)."""
    decoded: T = orjson.loads(dumps(body))
    return decoded


def _store_place(settings: Settings) -> str:
    """Where the store is, checked to exist when it is the data directory's SQLite file."""
    if settings.database_url:
        return "TASKGATE_DATABASE_URL"
    database = settings.data_dir / "taskgate.db"
    if not database.is_file():
        raise CommandError(f"no Taskgate store in {_shown(settings.data_dir)}: pass --url (or set TASKGATE_URL) "
                           "to ask a server, or --data-dir where `taskgate serve` keeps its data")
    return _shown(settings.data_dir)


def _shown(path: Path) -> str:
    return str(path.resolve())


async def _project(store: SqlStore, settings: Settings, wanted: str | None, where: str) -> str:
    """The project the command reads (see the module's docstring)."""
    projects = await store.database.read(project_ids)
    if settings.client_api_key:
        key = settings.client_api_key.strip()
        project_id = await store.project_for_key_hash(key_hash(key))
        if project_id is None and key in settings.api_keys:
            project_id = projects.get(DEFAULT_PROJECT)
        if project_id is None:
            raise CommandError(f"UnauthorizedError: TASKGATE_API_KEY is not a key of the store at {where}")
        if wanted is not None and projects.get(wanted) != project_id:
            raise CommandError(f"TASKGATE_API_KEY belongs to another project than '{wanted}'")
        return project_id
    if wanted is not None:
        if wanted not in projects:
            raise CommandError(f"no project '{wanted}' in the store at {where}; it has: {_names(projects)}")
        return projects[wanted]
    if len(projects) == 1:
        return next(iter(projects.values()))
    if not projects:
        raise CommandError(f"the store at {where} has no project yet: create one with "
                           "`taskgate keys create --project NAME`")
    raise CommandError(f"the store at {where} has {len(projects)} projects ({_names(projects)}): choose one with "
                       "--project NAME or TASKGATE_API_KEY")


def _names(projects: dict[str, Any]) -> str:
    shown = list(projects)[:20]
    return ", ".join(shown) + (", ..." if len(projects) > len(shown) else "") if shown else "none"
