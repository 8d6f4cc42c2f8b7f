"""The UI's trace listing: newest first, filtered by a span's function, model, tag or status and by
time, paged by time (keyset) so a late page costs what the first does.

Without a span filter, pages are read from `trace_roots` by its (project, start time) index. With
one, spans are walked newest first by the time index (`ix_spans_usage`; a filter for failed or
cancelled spans walks only those, by the partial index `ix_spans_unsuccessful`) in windows, each
span flagged by whether it passes the filters. The walk stops once a page of distinct traces is
found, or after MAX_WALKED spans (the page is then shorter, and the next one continues from where
it stopped), so a rare or absent value never costs a scan of the whole project. A trace is listed at
the time of its newest matching span; one with matching spans on both sides of a page boundary can
appear on both pages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.store.analytics import tag_value
from taskgate.store.base import TraceFilter, TraceSummary
from taskgate.store.tables import spans, trace_roots

MAX_WALKED = 2_000
WINDOW = 500


def find_traces(conn: Connection, project_id: str, which: TraceFilter, before: datetime | None,
                limit: int) -> tuple[list[TraceSummary], datetime | None]:
    if which.by_span:
        found, next_before = _walk_spans(conn, project_id, which, before, limit)
    else:
        found, next_before = _roots_page(conn, project_id, which, before, limit)
    return _summaries(conn, project_id, found), next_before


def _roots_page(conn: Connection, project_id: str, which: TraceFilter, before: datetime | None,
                limit: int) -> tuple[list[str], datetime | None]:
    conditions = [trace_roots.c.project_id == project_id, trace_roots.c.start_time.is_not(None)]
    if before is not None:
        conditions.append(trace_roots.c.start_time < before)
    if which.since is not None:
        conditions.append(trace_roots.c.start_time >= which.since)
    if which.until is not None:
        conditions.append(trace_roots.c.start_time < which.until)
    rows = conn.execute(sa.select(trace_roots.c.trace_id, trace_roots.c.start_time).where(*conditions)
                        .order_by(trace_roots.c.start_time.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [trace_id for trace_id, _ in rows], (rows[-1][1] if more and rows else None)


def _walked_spans(project_id: str, which: TraceFilter) -> list[sa.ColumnElement[bool]]:
    """Which spans the walk reads, newest first: the project's in the time range, and only the
    unsuccessful ones for a status filter other than ok (the term the partial index
    `ix_spans_unsuccessful` is made for; see tables.UNSUCCESSFUL_SPANS)."""
    walked: list[sa.ColumnElement[bool]] = [spans.c.project_id == project_id, spans.c.start_time.is_not(None)]
    if which.since is not None:
        walked.append(spans.c.start_time >= which.since)
    if which.until is not None:
        walked.append(spans.c.start_time < which.until)
    if which.status not in (None, "ok"):
        walked.append(spans.c.status != "ok")
    return walked


def _matching(conn: Connection, which: TraceFilter) -> sa.ColumnElement[bool]:
    """Whether a walked span passes every filter: decided for the rows of one window only."""
    conditions: list[sa.ColumnElement[bool]] = []
    if which.function is not None:
        conditions.append(spans.c.function_name == which.function)
    if which.model is not None:
        conditions.append(spans.c.model_used == which.model)
    if which.status is not None:
        conditions.append(spans.c.status == which.status)
    if which.tag is not None:
        key, value = which.tag
        conditions.append(sa.cast(tag_value(conn.dialect.name, key), sa.String) == value)
    return sa.and_(*conditions)


def _walk_spans(conn: Connection, project_id: str, which: TraceFilter, before: datetime | None,
                limit: int) -> tuple[list[str], datetime | None]:
    """Windows of WINDOW spans newest first, each read by the time index with a flag saying whether
    the span passes the filters (computed for those rows alone), until a page of distinct traces is
    found or MAX_WALKED spans were read. A filter that matches nothing thus reads MAX_WALKED spans,
    never the whole project."""
    walked_spans = _walked_spans(project_id, which)
    matched = sa.case((_matching(conn, which), 1), else_=0)
    found: dict[str, None] = {}
    cursor = before
    walked = 0
    while walked < MAX_WALKED:
        window = [*walked_spans, spans.c.start_time < cursor] if cursor is not None else walked_spans
        rows = conn.execute(sa.select(spans.c.trace_id, spans.c.start_time, matched).where(*window)
                            .order_by(spans.c.start_time.desc()).limit(WINDOW)).all()
        for trace_id, start_time, passes in rows:
            if passes and trace_id not in found:
                if len(found) == limit:
                    return list(found), cursor  # a next page exists: it starts before the last span read
                found[trace_id] = None
            cursor = start_time
        walked += len(rows)
        if len(rows) < WINDOW:
            return list(found), None
    return list(found), cursor


def _summaries(conn: Connection, project_id: str, trace_ids: list[str]) -> list[TraceSummary]:
    """The traces' summaries in the order given: their earliest root's name, status, input and output,
    and their spans' count, time span, tokens and cost."""
    if not trace_ids:
        return []
    root_ids = dict(conn.execute(sa.select(trace_roots.c.trace_id, trace_roots.c.root_id).where(
        trace_roots.c.project_id == project_id, trace_roots.c.trace_id.in_(trace_ids))).all())
    roots = {row["id"]: row for row in conn.execute(
        sa.select(spans.c.id, spans.c.name, spans.c.status, spans.c.input, spans.c.output)
        .where(spans.c.project_id == project_id, spans.c.id.in_(list(root_ids.values())))).mappings()}
    sums = {row["trace_id"]: row for row in conn.execute(
        sa.select(spans.c.trace_id, sa.func.count().label("span_count"),
                  sa.func.min(spans.c.start_time).label("start_time"),
                  sa.func.max(spans.c.end_time).label("end_time"),
                  sa.func.sum(spans.c.total_tokens).label("total_tokens"),
                  sa.func.sum(spans.c.cost).label("cost"))
        .where(spans.c.project_id == project_id, spans.c.trace_id.in_(trace_ids))
        .group_by(spans.c.trace_id)).mappings()}
    summaries = []
    for trace_id in trace_ids:
        root: Any = roots.get(root_ids.get(trace_id, ""))
        summed = sums.get(trace_id)
        if root is None or summed is None:
            continue  # deleted meanwhile, or every root gone: readable by id, not listed
        summaries.append(TraceSummary(
            id=trace_id, name=root["name"], span_count=summed["span_count"], start_time=summed["start_time"],
            end_time=summed["end_time"], status=root["status"], input=root["input"], output=root["output"],
            total_tokens=int(summed["total_tokens"] or 0),
            cost=None if summed["cost"] is None else float(summed["cost"])))
    return summaries
