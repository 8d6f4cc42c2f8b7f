"""v2 traces (`opper.traces.list`, `opper.traces.get`) as 1.7.2's models read them: inputs and
outputs as text (`wire_text`), and each span with its metrics and its data (model, function, tags)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.span_bodies import (
    MAX_SPAN_NAME_CHARS,
    SCORE_KEY,
    duration_ms,
    span_id,
    trace_head,
    trace_item,
    user_meta,
)
from taskgate.api.v2.metrics import metric_body
from taskgate.api.v2.paging import page_of, paged
from taskgate.api.v2.wire_text import wire_text
from taskgate.engine.feedback import METRIC
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.server.request_io import JSONResponse
from taskgate.store.base import SpanEvent, SpanRecord, TraceSummary
from taskgate.store.codec import total_tokens

if TYPE_CHECKING:
    from taskgate.context import AppContext

def _summary(summary: TraceSummary) -> dict[str, Any]:
    return {**trace_item(summary), "input": wire_text(summary.input), "output": wire_text(summary.output)}


def _score(span: SpanRecord) -> int | None:
    """1.7.2 types a span's score as an integer; a fractional one given through v3 is rounded."""
    score = span.meta.get(SCORE_KEY)
    return round(score) if isinstance(score, int | float) else None


def _span(span: SpanRecord, metrics: list[SpanEvent]) -> dict[str, Any]:
    return {
        "id": span.id,
        "name": span.name,
        "type": span.type,
        "parent_id": span.parent_id,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_ms": duration_ms(span.start_time, span.end_time),
        "error": span.error,
        "meta": user_meta(span),
        "data": {
            "input": wire_text(span.input),
            "output": wire_text(span.output),
            "total_tokens": total_tokens(span.usage),
            "model": span.model_used,
            "function": span.function_name,
            "tags": [f"{key}:{wire_text(value)}" for key, value in span.tags.items()],
            "score": _score(span),
        },
        "metrics": [{key: value for key, value in metric_body(metric).items() if key != "span_id"}
                    for metric in metrics],
        "score": _score(span),
    }


async def list_traces(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    page = page_of(request)
    name = request.query_params.get("name") or None
    if name is not None and len(name) > MAX_SPAN_NAME_CHARS:
        raise BadRequestError(f"query parameter 'name' must be at most {MAX_SPAN_NAME_CHARS} characters")
    summaries, total = await ctx.engine.spans.list_traces(project_id, name, page.limit, page.offset)
    return JSONResponse(paged([_summary(summary) for summary in summaries], total))


async def get_trace(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    trace_id = span_id(request.path_params["trace_id"], "a trace id")
    spans = await ctx.engine.spans.get_trace(project_id, trace_id)
    if not spans:
        raise NotFoundError(f"trace '{trace_id}' was not found")
    metrics, _ = await ctx.engine.feedback.trace_events(project_id, trace_id, origin=METRIC)
    by_span: dict[str, list[SpanEvent]] = defaultdict(list)
    for metric in metrics:
        by_span[metric.span_id].append(metric)
    head = trace_head(trace_id, spans)
    return JSONResponse({**head, "input": wire_text(head["input"]), "output": wire_text(head["output"]),
                         "total_tokens": sum(total_tokens(span.usage) for span in spans),
                         "spans": [_span(span, by_span[span.id]) for span in spans]})
