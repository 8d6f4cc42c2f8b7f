"""Spans and traces as readers see them: the recorder's unwritten spans and the store's, as one.

A call's span waits in the recorder for its batch (see `taskgate.telemetry.recorder`), and a
reader must not miss it: a look-up by id finds it where it waits, and a read or delete the store
answers alone (a trace, a listing) first writes what waits. Spans made through the span API are
written through at once, and only once the store could encode them. Turning a parent span into
the trace a new span joins is written here once, for calls, embeddings and the span API alike.

With replicas on Redis, every span recorded or written here is also published to the span mirror
(`replicas.span_mirror`), and a look-up by id reads it there before the store, so a span another
replica has not written yet is found without waiting for its batch; a trace read adds the trace's
mirrored spans to the stored ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import orjson

from taskgate.errors import BadRequestError, NotFoundError
from taskgate.ids import new_id
from taskgate.replicas.span_mirror import SpanMirror
from taskgate.store.base import SpanRecord, Store, TraceFilter, TraceSummary
from taskgate.store.spans import check_storable
from taskgate.telemetry.recorder import SpanRecorder

# A NUL in JSON text: `\u0000` after an even number of backslashes (after an odd number, the `\`
# before `u` is the second half of an escaped backslash, and `u0000` is plain text).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# In a call's span `meta`: the id of the function revision the call ran with, so its page shows the
# instructions it really used after the function has changed. Reserved: the span API neither shows
# it nor lets a client set it (`taskgate.api.span_bodies`).
REVISION_KEY = "_revision_id"


class SpanService:
    def __init__(self, store: Store, recorder: SpanRecorder,
                 charge: Callable[[SpanRecord], None] | None = None, mirror: SpanMirror | None = None) -> None:
        """`charge`: told every span a call records, to count its usage against the caller's limits;
        `mirror`: where replicas read each other's unwritten spans (`replicas.span_mirror`)."""
        self._store = store
        self._recorder = recorder
        self._charge = charge
        self._mirror = mirror
        self.mirrored = mirror is not None  # only then has a call's answer to wait for `settled`

    def record(self, span: SpanRecord) -> bool:
        """Keep a finished span for the next batch: never waits on the store. Whether it is also
        journaled, safe from a crash (see `SpanRecorder.record`). Its usage is charged to the
        caller's limits."""
        journaled = self._recorder.record(span)
        if self._charge is not None:
            self._charge(span)
        if self._mirror is not None:
            self._mirror.publish(span)
        return journaled

    async def settled(self, project_id: str, span_id: str) -> None:
        """Return once every replica can read the span by id (at once without a mirror): awaited
        before a call's answer, which carries the id, goes out."""
        if self._mirror is not None:
            await self._mirror.settled(project_id, span_id)

    def admit(self) -> None:
        """Refuse a new call with a 503 when its span could not be journaled (see `SpanRecorder.admit`)."""
        self._recorder.admit()

    def open(self, span: SpanRecord) -> None:
        """Journal a stream's span before its first byte (see `SpanRecorder.open`); raises a 503 error."""
        self._recorder.open(span)

    async def find(self, project_id: str, span_id: str, *, wait_for_peers: bool = True) -> SpanRecord | None:
        """The newest version of a span, written or not: the mirror's (every replica's unwritten
        spans), else the recorder's and the store's. Without the mirror (or while Redis is down, or
        for a span too large to mirror) a miss waits for peers' batches (`SpanRecorder.find_span`)."""
        if self._mirror is None:
            return await self._recorder.find_span(project_id, span_id, wait_for_peers=wait_for_peers)
        mirrored = await self._mirror.find(project_id, span_id)
        if isinstance(mirrored, SpanRecord):
            return mirrored
        peers_unknown = mirrored in ("unknown", "elsewhere")
        return await self._recorder.find_span(project_id, span_id, wait_for_peers=wait_for_peers and peers_unknown)

    async def trace_for(self, project_id: str, parent_id: str | None, trace_id: str | None = None, *,
                        parent_noun: str = "parent span") -> str:
        """The trace a new span joins: its parent's when it names one (NotFoundError, naming the
        parent as `parent_noun`, when there is no such span), else `trace_id`, else a new trace."""
        if parent_id is None:
            return trace_id or new_id()
        parent = await self.find(project_id, parent_id)
        if parent is None:
            raise NotFoundError(f"{parent_noun} '{parent_id}' was not found")
        return parent.trace_id

    async def write(self, span: SpanRecord) -> None:
        """Store a span made or changed through the span API now, on every replica at once.

        What the store could not keep as it is gets refused first: a span answered with its id must
        be stored, and read back as it was sent. The store cannot encode an integer beyond 64 bits
        or nesting too deep, and drops a NUL character from text (Postgres refuses it).
        """
        try:
            check_storable(span)
            encoded = orjson.dumps((span.name, span.type, span.error, span.input, span.output, span.tags, span.meta))
        except (TypeError, OverflowError) as exc:
            raise BadRequestError(f"the span cannot be stored: {exc}") from exc
        if b"\\u0000" in encoded and _ESCAPED_NUL.search(encoded):
            raise BadRequestError("the span holds a NUL character (\\u0000), which the store cannot keep")
        await self._recorder.write_through(span)
        if self._mirror is not None:  # a mirrored older version must not hide this one
            self._mirror.publish(span)
            await self._mirror.settled(span.project_id, span.id)

    async def delete(self, project_id: str, span_id: str) -> bool:
        await self._recorder.flush()  # a span still waiting would otherwise be written after the delete
        if self._mirror is not None:
            await self._mirror.discard(project_id, span_id)
        return await self._store.delete_span(project_id, span_id)

    async def list_traces(self, project_id: str, name: str | None, limit: int,
                          offset: int) -> tuple[list[TraceSummary], int]:
        await self._recorder.flush()
        return await self._store.list_traces(project_id, name=name, limit=limit, offset=offset)

    async def find_traces(self, project_id: str, which: TraceFilter, before: datetime | None,
                          limit: int) -> tuple[list[TraceSummary], datetime | None]:
        """A page of the UI's trace listing (see `taskgate.store.trace_search`)."""
        await self._recorder.flush()
        return await self._store.find_traces(project_id, which, before, limit)

    async def get_trace(self, project_id: str, trace_id: str) -> list[SpanRecord]:
        await self._recorder.flush()
        stored = await self._store.get_trace(project_id, trace_id)
        mirrored = await self._mirror.trace(project_id, trace_id) if self._mirror is not None else None
        if not mirrored:
            return stored
        newest = {span.id: span for span in stored} | {span.id: span for span in mirrored}
        return sorted(newest.values(), key=_trace_order)

    async def trace_exists(self, project_id: str, trace_id: str) -> bool:
        await self._recorder.flush()
        return await self._store.trace_exists(project_id, trace_id)

    async def delete_trace(self, project_id: str, trace_id: str) -> bool:
        await self._recorder.flush()
        if self._mirror is not None:
            await self._mirror.discard_trace(project_id, trace_id)
        return await self._store.delete_trace(project_id, trace_id)


def _trace_order(span: SpanRecord) -> tuple[bool, float, str]:
    """The store's order of a trace's spans: by start (those without one last), then id."""
    return span.start_time is None, span.start_time.timestamp() if span.start_time else 0.0, span.id
