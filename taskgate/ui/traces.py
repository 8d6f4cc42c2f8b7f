"""Traces: the filtered listing, a trace's span tree as a waterfall, a span's detail, and the two
things a person does from a span (feedback, saving it as an example) through the engine's feedback
service, as `POST /v2/spans/{id}/feedback` and `/save_examples` do."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from starlette.responses import RedirectResponse, Response

from taskgate.api.span_bodies import MAX_ID_CHARS, duration_ms
from taskgate.api.v2.feedback import MAX_COMMENT_CHARS
from taskgate.engine.feedback import FEEDBACK, METRIC
from taskgate.engine.spans import REVISION_KEY
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.store.base import SpanEvent, SpanRecord, TraceFilter
from taskgate.ui.guard import Visit

PAGE_SIZE = 50
MAX_FILTER_CHARS = 300
STATUSES = ("ok", "error", "cancelled")
TIME_INPUT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends; read as UTC


def _text_filter(visit: Visit, name: str) -> str | None:
    value = visit.request.query_params.get(name, "").strip()
    if len(value) > MAX_FILTER_CHARS:
        raise BadRequestError(f"the {name} filter must be at most {MAX_FILTER_CHARS} characters")
    return value or None


def _time_filter(visit: Visit, name: str) -> datetime | None:
    raw = _text_filter(visit, name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequestError(f"the {name} filter is not a date and time: {raw[:40]!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def trace_filter(visit: Visit) -> TraceFilter:
    """The listing's filters from the query; a wrong one is a 400 page naming it."""
    status = _text_filter(visit, "status")
    if status is not None and status not in STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(STATUSES)}")
    tag = None
    if (raw_tag := _text_filter(visit, "tag")) is not None:
        key, colon, value = raw_tag.partition(":")
        if not colon or not key.strip() or '"' in key or "\\" in key:
            raise BadRequestError("the tag filter is key:value, the key without quotes or backslashes")
        tag = (key.strip(), value.strip())
    return TraceFilter(function=_text_filter(visit, "function"), model=_text_filter(visit, "model"), tag=tag,
                       status=status, since=_time_filter(visit, "since"), until=_time_filter(visit, "until"))


async def trace_list(visit: Visit) -> Response:
    which = trace_filter(visit)
    before = _time_filter(visit, "before")
    traces, next_before = await visit.ctx.engine.spans.find_traces(visit.project_id, which, before, PAGE_SIZE)
    kept = {name: visit.request.query_params.get(name, "") for name in
            ("function", "model", "tag", "status", "since", "until")}
    next_url = None
    if next_before is not None:
        query = {**{k: v for k, v in kept.items() if v}, "before": next_before.isoformat()}
        next_url = "/ui/traces?" + urlencode(query)
    rows = [{"summary": trace, "duration": duration_ms(trace.start_time, trace.end_time)} for trace in traces]
    return visit.page("traces.html", title="Traces", rows=rows, filters=kept, statuses=STATUSES,
                      next_url=next_url, paged_back=before is not None)


def _path_id(visit: Visit, name: str) -> str:
    value = visit.request.path_params[name]
    if not value or len(value) > MAX_ID_CHARS:
        raise NotFoundError(f"no such {name.removesuffix('_id')}")
    return str(value)


@dataclass(slots=True)
class WaterfallRow:
    span: SpanRecord
    depth: int
    offset: float  # of the trace's duration, 0..1000
    width: float


def waterfall(spans: list[SpanRecord]) -> list[WaterfallRow]:
    """The spans depth first under their parents (a span whose parent is not in the trace is a root),
    each with its bar's place on a 0..1000 scale of the trace's time."""
    ids = {span.id for span in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    starts = [span.start_time for span in spans if span.start_time is not None]
    ends = [end for span in spans if (end := span.end_time or span.start_time) is not None]
    first = min(starts) if starts else None
    total = max(((max(ends) - first).total_seconds() if first and ends else 0.0), 1e-6)
    rows: list[WaterfallRow] = []
    stack = [(span, 0) for span in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span.id in seen:  # a cycle of parents cannot loop the page
            continue
        seen.add(span.id)
        offset, width = 0.0, 1000.0
        if first is not None and span.start_time is not None:
            offset = (span.start_time - first).total_seconds() / total * 1000
            end = span.end_time or span.start_time
            width = max((end - span.start_time).total_seconds() / total * 1000, 2.0)
        rows.append(WaterfallRow(span, depth, round(offset, 1), round(min(width, 1000 - offset), 1)))
        stack.extend((child, depth + 1) for child in reversed(children.get(span.id, [])))
    return rows


@dataclass(slots=True)
class SpanEvents:
    feedback: SpanEvent | None
    metrics: list[SpanEvent]
    guard_findings: list[SpanEvent]
    other: list[SpanEvent]


async def _events(visit: Visit, span: SpanRecord) -> SpanEvents:
    found, _ = await visit.ctx.engine.feedback.span_events(visit.project_id, span.id, None, 500, 0)
    feedback = [event for event in found if event.origin == FEEDBACK]
    return SpanEvents(
        feedback=feedback[-1] if feedback else None,
        metrics=[event for event in found if event.origin == METRIC],
        guard_findings=[event for event in found if event.kind == "guardrail"],
        other=[event for event in found if event.origin not in (FEEDBACK, METRIC) and event.kind != "guardrail"],
    )


@dataclass(slots=True)
class SpanInstructions:
    """The instructions a span's page shows, and whose they are: `call` (the revision the call ran
    with), `current` (a span from before calls recorded their revision: the function's instructions
    now, labelled so) or `gone` (the call's revision is no longer stored; nothing is shown)."""

    text: str | None
    source: str
    revision_number: int | None = None


async def _instructions(visit: Visit, span: SpanRecord) -> SpanInstructions | None:
    if span.function_name is None:
        return None
    functions = visit.ctx.engine.functions
    revision_id = span.meta.get(REVISION_KEY)
    if revision_id is None:
        function = await functions.get(visit.project_id, span.function_name)
        return None if function is None else SpanInstructions(function.definition.instructions, "current")
    revision = None
    if isinstance(revision_id, str) and len(revision_id) <= MAX_ID_CHARS:
        revision = await functions.revision_by_id(visit.project_id, span.function_name, revision_id)
    if revision is None:
        return SpanInstructions(None, "gone")
    return SpanInstructions(revision.definition.instructions, "call", revision.number)


async def trace_page(visit: Visit) -> Response:
    trace_id = _path_id(visit, "trace_id")
    spans = await visit.ctx.engine.spans.get_trace(visit.project_id, trace_id)
    if not spans:
        raise NotFoundError(f"trace '{trace_id[:100]}' was not found")
    rows = waterfall(spans)
    wanted = visit.request.query_params.get("span")
    selected = next((row.span for row in rows if row.span.id == wanted), rows[0].span)
    total = duration_ms(min((s.start_time for s in spans if s.start_time), default=None),
                        max((s.end_time for s in spans if s.end_time), default=None))
    return visit.page(
        "trace.html", title=f"Trace {spans[0].name}", trace_id=trace_id, rows=rows, selected=selected,
        total_ms=total, events=await _events(visit, selected), instructions=await _instructions(visit, selected),
        selected_ms=duration_ms(selected.start_time, selected.end_time), notice=_notice(visit),
        total_cost=sum(span.cost or 0.0 for span in spans), max_comment=MAX_COMMENT_CHARS)


def _notice(visit: Visit) -> str:
    return {"feedback": "Feedback saved.", "example": "Saved as an example of the function."}.get(
        visit.request.query_params.get("saved", ""), "")


async def span_page(visit: Visit) -> Response:
    """A span by its id alone: its trace's page with it selected."""
    span = await visit.ctx.engine.feedback.span(visit.project_id, _path_id(visit, "span_id"))
    return RedirectResponse(_span_url(span, ""), status_code=303)


def _span_url(span: SpanRecord, saved: str) -> str:
    query = {"span": span.id, **({"saved": saved} if saved else {})}
    return f"/ui/traces/{quote(span.trace_id, safe='')}?{urlencode(query)}"


async def give_feedback(visit: Visit) -> Response:
    span = await visit.ctx.engine.feedback.span(visit.project_id, _path_id(visit, "span_id"))
    score = _score(visit.form.get("score", ""))
    comment = visit.form.get("comment", "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise BadRequestError(f"a comment must be at most {MAX_COMMENT_CHARS} characters")
    await visit.ctx.engine.feedback.give_feedback(visit.project_id, span.id, score, comment, False)
    return RedirectResponse(_span_url(span, "feedback"), status_code=303)


def _score(raw: str) -> float:
    try:
        score = float(raw)
    except ValueError:
        score = math.nan
    if not math.isfinite(score) or not 0 <= score <= 1:
        raise BadRequestError("the score must be a number from 0 to 1")
    return score


async def save_example(visit: Visit) -> Response:
    span = await visit.ctx.engine.feedback.span(visit.project_id, _path_id(visit, "span_id"))
    await visit.ctx.engine.feedback.save_example(visit.project_id, span.id, visit.form.get("comment") or None)
    return RedirectResponse(_span_url(span, "example"), status_code=303)
