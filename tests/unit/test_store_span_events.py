"""Span events in the store (SQLite and Postgres): v2 metrics and feedback and v3 events in one
table, each origin reading back its own, scoped by project, and gone with their span or trace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from taskgate.store import SqlStore
from taskgate.store.base import EventFilter, SpanEvent, SpanRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(span: str, trace: str, origin: str, kind: str = "evaluation", offset: int = 0, **data: object) -> SpanEvent:
    return SpanEvent(id=str(uuid.uuid4()), span_id=span, trace_id=trace, origin=origin, kind=kind, source="test",
                     data=dict(data), created_at=T0 + timedelta(seconds=offset))


async def test_events_list_page_and_filter(store: SqlStore, project: str) -> None:
    made = [await store.add_span_event(project, _event("s1", "t1", "metric", offset=n, n=n)) for n in range(3)]
    await store.add_span_event(project, _event("s2", "t1", "event", "guardrail", offset=5))
    await store.add_span_event(project, _event("s3", "t2", "event", offset=6))
    page, total = await store.list_span_events(project, EventFilter(span_id="s1", origin="metric"), limit=2, offset=1)
    assert total == 3 and [e.data["n"] for e in page] == [1, 2]
    page, total = await store.list_span_events(project, EventFilter(span_id="s1"), limit=1)
    assert total == 3 and [e.id for e in page] == [made[0].id]  # a first page that is not the last: counted
    assert (await store.list_span_events(project, EventFilter(span_id="s1"), limit=5, offset=9)) == ([], 3)
    trace, total = await store.list_span_events(project, EventFilter(trace_id="t1"), limit=None)
    assert total == 4 and [e.span_id for e in trace] == ["s1", "s1", "s1", "s2"]
    kinds, total = await store.list_span_events(project, EventFilter(trace_id="t1", kind="guardrail"))
    assert total == 1 and kinds[0].kind == "guardrail" and kinds[0].created_at == T0 + timedelta(seconds=5)
    other = await store.ensure_project(f"other-{uuid.uuid4().hex[:8]}")
    assert await store.list_span_events(other, EventFilter(trace_id="t1")) == ([], 0)
    assert await store.get_span_event(other, "s1", "metric", made[0].id) is None


async def test_events_by_origin_update_delete_and_replace(store: SqlStore, project: str) -> None:
    metric = await store.add_span_event(project, _event("s", "t", "metric", value=1))
    assert await store.get_span_event(project, "s", "event", metric.id) is None  # another origin's
    updated = await store.update_span_event(project, "s", "metric", metric.id, {"value": 2})
    assert updated is not None and updated.data == {"value": 2} and updated.created_at == metric.created_at
    assert await store.update_span_event(project, "s", "metric", "nope", {}) is None
    first = await store.add_span_event(project, _event("s", "t", "feedback", "feedback", score=0.1), replace=True)
    second = await store.add_span_event(project, _event("s", "t", "feedback", "feedback", score=0.9), replace=True)
    feedback, total = await store.list_span_events(project, EventFilter(span_id="s", origin="feedback"))
    assert total == 1 and [e.id for e in feedback] == [second.id] and first.id != second.id
    assert await store.delete_span_event(project, "s", "metric", metric.id)
    assert not await store.delete_span_event(project, "s", "metric", metric.id)


async def test_events_go_with_their_span_and_trace(store: SqlStore, project: str) -> None:
    spans = [SpanRecord(id=f"{name}-{project}", trace_id=f"t-{project}", project_id=project, name=name,
                        parent_id=None if name == "a" else f"a-{project}", start_time=T0) for name in ("a", "b")]
    await store.write_spans(spans)
    for span in spans:
        await store.add_span_event(project, _event(span.id, span.trace_id, "event"))
    await store.delete_span(project, spans[1].id)
    left, _ = await store.list_span_events(project, EventFilter(trace_id=spans[0].trace_id))
    assert [e.span_id for e in left] == [spans[0].id]
    await store.delete_trace(project, spans[0].trace_id)
    assert await store.list_span_events(project, EventFilter(trace_id=spans[0].trace_id)) == ([], 0)
