"""Span events: v2 metrics and feedback and v3 events, one table. Blocking calls on one connection.

Each row carries its span's trace id, so a trace's events are read by one index range rather
than by first listing the trace's spans.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskgate.store.base import EventFilter, SpanEvent
from taskgate.store.tables import span_events


def _event(row: RowMapping) -> SpanEvent:
    return SpanEvent(id=row["id"], span_id=row["span_id"], trace_id=row["trace_id"], origin=row["origin"],
                     kind=row["kind"], source=row["source"], data=row["data"], created_at=row["created_at"])


def _one(project_id: str, span_id: str, origin: str, event_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(span_events.c.project_id == project_id, span_events.c.span_id == span_id,
                   span_events.c.origin == origin, span_events.c.id == event_id)


def add_event(conn: Connection, project_id: str, event: SpanEvent, replace: bool) -> None:
    if replace:
        conn.execute(span_events.delete().where(
            span_events.c.project_id == project_id, span_events.c.span_id == event.span_id,
            span_events.c.origin == event.origin))
    conn.execute(span_events.insert().values(
        id=event.id, project_id=project_id, span_id=event.span_id, trace_id=event.trace_id, origin=event.origin,
        kind=event.kind, source=event.source, data=event.data, created_at=event.created_at))


def list_events(conn: Connection, project_id: str, which: EventFilter, limit: int | None,
                offset: int) -> tuple[list[SpanEvent], int]:
    conditions = [span_events.c.project_id == project_id]
    for column, wanted in ((span_events.c.span_id, which.span_id), (span_events.c.trace_id, which.trace_id),
                           (span_events.c.origin, which.origin), (span_events.c.kind, which.kind)):
        if wanted is not None:
            conditions.append(column == wanted)
    page = (sa.select(span_events).where(*conditions)
            .order_by(span_events.c.created_at, span_events.c.id).limit(limit).offset(offset))
    events = [_event(row) for row in conn.execute(page).mappings()]
    if limit is None or (len(events) < limit and (events or offset == 0)):
        return events, offset + len(events)  # the last page: its end is the count
    total = conn.execute(sa.select(sa.func.count()).select_from(span_events).where(*conditions)).scalar_one()
    return events, total


def get_event(conn: Connection, project_id: str, span_id: str, origin: str, event_id: str) -> SpanEvent | None:
    row = conn.execute(sa.select(span_events).where(_one(project_id, span_id, origin, event_id))).mappings().first()
    return _event(row) if row else None


def update_event(conn: Connection, project_id: str, span_id: str, origin: str, event_id: str,
                 data: dict[str, Any]) -> SpanEvent | None:
    conn.execute(span_events.update().where(_one(project_id, span_id, origin, event_id)).values(data=data))
    return get_event(conn, project_id, span_id, origin, event_id)


def delete_event(conn: Connection, project_id: str, span_id: str, origin: str, event_id: str) -> bool:
    return conn.execute(span_events.delete().where(_one(project_id, span_id, origin, event_id))).rowcount > 0


def delete_events_of_span(conn: Connection, project_id: str, span_id: str) -> None:
    conn.execute(span_events.delete().where(span_events.c.project_id == project_id,
                                            span_events.c.span_id == span_id))


def delete_events_of_trace(conn: Connection, project_id: str, trace_id: str) -> None:
    conn.execute(span_events.delete().where(span_events.c.project_id == project_id,
                                            span_events.c.trace_id == trace_id))
