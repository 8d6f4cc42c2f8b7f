"""v3 spans and traces. 2.1.1's `opper.trace()` creates a span here and passes its id as the
`parent_span_id` of the calls inside, so those calls land in the same trace under it.

Trace reads flush the recorder first so a call that has just returned is already visible.
2.1.1 reads a trace's fields at the top level while the spec wraps them in `data`; we send both.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from taskgate.api.http import JSONResponse, query_int, read_json_object
from taskgate.api.spans_common import (
    create_span,
    delete_span,
    duration_ms,
    find_span,
    span_id,
    update_span,
    v3_span,
)
from taskgate.api.v3_routing import Operation, V3Request
from taskgate.errors import NotFoundError
from taskgate.store.base import SpanRecord, TraceSummary


def _span_envelope(span: SpanRecord) -> dict[str, Any]:
    body = v3_span(span)
    return {"data": body, **body}


async def post_span(req: V3Request) -> Response:
    body = await read_json_object(req.request, req.ctx.settings.max_body_bytes)
    span = await create_span(req.ctx, req.project_id, body)
    created = {"id": span.id, "trace_id": span.trace_id, "name": span.name, "parent_id": span.parent_id,
               "type": span.type}
    return JSONResponse({"data": created})


async def get_span(req: V3Request) -> Response:
    return JSONResponse(_span_envelope(await find_span(req.ctx, req.project_id, req.params["id"])))


async def patch_span(req: V3Request) -> Response:
    body = await read_json_object(req.request, req.ctx.settings.max_body_bytes)
    return JSONResponse(_span_envelope(await update_span(req.ctx, req.project_id, req.params["id"], body)))


async def remove_span(req: V3Request) -> Response:
    await delete_span(req.ctx, req.project_id, req.params["id"])
    return Response(status_code=204)


def _trace_item(summary: TraceSummary) -> dict[str, Any]:
    return {
        "id": summary.id,
        "name": summary.name,
        "span_count": summary.span_count,
        "start_time": summary.start_time,
        "end_time": summary.end_time,
        "duration_ms": duration_ms(summary.start_time, summary.end_time),
        "status": summary.status,
        "input": summary.input,
        "output": summary.output,
        "total_tokens": summary.total_tokens,
    }


def trace_body(trace_id: str, spans: list[SpanRecord]) -> dict[str, Any]:
    """A trace from its spans: named after its root span, spanning the earliest start to the latest end."""
    ids = {span.id for span in spans}
    root = next((span for span in spans if span.parent_id is None or span.parent_id not in ids), spans[0])
    starts = [span.start_time for span in spans if span.start_time is not None]
    ends = [span.end_time for span in spans if span.end_time is not None]
    start, end = (min(starts) if starts else None), (max(ends) if ends else None)
    return {
        "id": trace_id,
        "name": root.name,
        "span_count": len(spans),
        "start_time": start,
        "end_time": end,
        "duration_ms": duration_ms(start, end),
        "status": "error" if any(span.status == "error" for span in spans) else "ok",
        "input": root.input,
        "output": root.output,
        "spans": [v3_span(span) for span in spans],
        "events": [],
    }


async def list_traces(req: V3Request) -> Response:
    limit = query_int(req.request, "limit", 100, minimum=1, maximum=100)
    offset = query_int(req.request, "offset", 0)
    name = req.request.query_params.get("name") or None
    await req.ctx.recorder.flush()
    summaries, total = await req.ctx.store.list_traces(req.project_id, name=name, limit=limit, offset=offset)
    return JSONResponse({
        "data": [_trace_item(summary) for summary in summaries],
        "meta": {"total_count": total, "total": total, "limit": limit, "offset": offset},
    })


async def get_trace(req: V3Request) -> Response:
    trace_id = span_id(req.params["id"], "a trace id")
    await req.ctx.recorder.flush()
    spans = await req.ctx.store.get_trace(req.project_id, trace_id)
    if not spans:
        raise NotFoundError(f"trace '{trace_id}' was not found")
    body = trace_body(trace_id, spans)
    return JSONResponse({"data": body, **body})


async def remove_trace(req: V3Request) -> Response:
    trace_id = span_id(req.params["id"], "a trace id")
    await req.ctx.recorder.flush()
    if not await req.ctx.store.delete_trace(req.project_id, trace_id):
        raise NotFoundError(f"trace '{trace_id}' was not found")
    return Response(status_code=204)


_SPAN_BODY = "{name, trace_id?, parent_id?, type?, input?, output?, error?, start_time?, end_time?, meta?, " \
             "metadata?, tags?}"
OPERATIONS = [
    Operation("POST", "/v3/spans", "Create a span", post_span, body=_SPAN_BODY, tags=("spans",)),
    Operation("GET", "/v3/spans/{id}", "Get a span", get_span, tags=("spans",)),
    Operation("PATCH", "/v3/spans/{id}", "Update a span", patch_span,
              body="{name?, output?, error?, end_time?, meta?, metadata?, tags?}", tags=("spans",)),
    Operation("DELETE", "/v3/spans/{id}", "Delete a span", remove_span, status=204, tags=("spans",)),
    Operation("GET", "/v3/traces", "List traces", list_traces, query=("name", "limit", "offset"), tags=("traces",)),
    Operation("GET", "/v3/traces/{id}", "Get a trace with its spans", get_trace, tags=("traces",)),
    Operation("DELETE", "/v3/traces/{id}", "Delete a trace and its spans", remove_trace, status=204,
              tags=("traces",)),
]
