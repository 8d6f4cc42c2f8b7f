"""v3 spans and traces. 2.1.1's `opper.trace()` creates a span here and passes its id as the
`parent_span_id` of the calls inside, so those calls land in the same trace under it.

The engine's span service shows a call that has just returned, even before its span is written.
2.1.1 reads a trace's fields at the top level while the spec wraps them in `data`; we send both.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from taskgate.api.body_schemas import (
    ANY,
    DATE_TIME,
    INTEGER,
    NON_BLANK,
    NUMBER,
    OBJECT,
    STRING,
    JsonSchema,
    array,
    nullable,
    obj,
    text,
)
from taskgate.api.span_bodies import (
    MAX_ID_CHARS,
    MAX_SPAN_NAME_CHARS,
    METADATA_KEY,
    SCORE_KEY,
    create_span,
    delete_span,
    find_span,
    span_id,
    trace_head,
    trace_item,
    update_span,
    v3_span,
)
from taskgate.api.v3.routing import JSON, OFFSET, Operation, Param, V3Request, limit_param
from taskgate.engine.feedback import EVENT_KINDS
from taskgate.errors import NotFoundError
from taskgate.server.request_io import JSONResponse
from taskgate.store.base import SpanEvent, SpanRecord

_ID = "1 to 255 printable characters, without `/`"
_NAME: JsonSchema = {"type": "string", "minLength": 1, "maxLength": MAX_SPAN_NAME_CHARS, "pattern": NON_BLANK}
_TIME = "An ISO 8601 date-time; one without an offset is taken as UTC"
_SPAN_WRITE: dict[str, JsonSchema] = {
    "type": nullable(text("What kind of work the span is, e.g. tool or call")),
    "input": {"description": "Any JSON value"},
    "output": {"description": "Any JSON value"},
    "error": nullable(text("An error makes the span's status `error`")),
    "start_time": nullable(text(_TIME)),
    "end_time": nullable(text(_TIME)),
    "meta": nullable({"type": "object", "propertyNames": {"not": {"enum": [METADATA_KEY, SCORE_KEY]}},
                      "description": f"Free-form; {METADATA_KEY} and {SCORE_KEY} are Taskgate's own keys"}),
    "metadata": nullable(OBJECT),
    "tags": nullable(OBJECT),
    "score": nullable(NUMBER),
}
CREATE_SPAN_REQUEST: JsonSchema = obj({
    "name": _NAME,
    "id": nullable(text(f"The span's id, when the caller picks it: {_ID}", minLength=1, maxLength=MAX_ID_CHARS)),
    "trace_id": nullable(text(f"The trace to start or join when there is no parent: {_ID}", minLength=1,
                              maxLength=MAX_ID_CHARS)),
    "parent_id": nullable(text("A span to nest this one under, in its trace")),
    **_SPAN_WRITE,
}, required=("name",), title="CreateSpanRequest")
UPDATE_SPAN_REQUEST: JsonSchema = obj({"name": nullable(_NAME), **_SPAN_WRITE}, title="UpdateSpanRequest",
                                      description="The fields to change; absent ones keep their value")
_CREATED: JsonSchema = obj({"id": STRING, "trace_id": STRING, "name": STRING, "parent_id": nullable(STRING),
                            "type": STRING}, required=("id", "trace_id", "name", "parent_id", "type"))
_SPAN: dict[str, JsonSchema] = {
    "id": STRING,
    "trace_id": STRING,
    "name": STRING,
    "parent_id": nullable(STRING),
    "type": STRING,
    "input": ANY,
    "output": ANY,
    "error": nullable(STRING),
    "start_time": nullable(DATE_TIME),
    "end_time": nullable(DATE_TIME),
    "duration_ms": nullable(INTEGER),
    "status": STRING,
    "meta": OBJECT,
    "metadata": OBJECT,
    "tags": OBJECT,
    "model": nullable(STRING),
    "model_chain": array(STRING),
    "models_failed": array(STRING),
    "attempts": INTEGER,
    "usage": nullable({"type": "object", "additionalProperties": INTEGER}),
    "cost": nullable(NUMBER),
}
SPAN: JsonSchema = obj(_SPAN, required=tuple(_SPAN), title="Span")
_TRACE_HEAD: dict[str, JsonSchema] = {
    "id": STRING,
    "span_count": INTEGER,
    "start_time": nullable(DATE_TIME),
    "end_time": nullable(DATE_TIME),
    "duration_ms": nullable(INTEGER),
    "status": STRING,
    "input": ANY,
    "output": ANY,
}
TRACE_SUMMARY: JsonSchema = obj({**_TRACE_HEAD, "name": nullable(STRING), "total_tokens": INTEGER},
                                required=(*_TRACE_HEAD, "name", "total_tokens"), title="TraceSummary")
MAX_SOURCE_CHARS = 256
_EVENT: dict[str, JsonSchema] = {
    "id": STRING,
    "span_id": STRING,
    "kind": {"type": "string", "enum": list(EVENT_KINDS)},
    "source": STRING,
    "data": OBJECT,
    "created_at": DATE_TIME,
}
EVENT: JsonSchema = obj(_EVENT, required=tuple(_EVENT), title="SpanEvent",
                        description="Something recorded about a span; v2 feedback and metrics show here too "
                                    "(source `feedback` and `metric`)")
CREATE_EVENT_REQUEST: JsonSchema = obj({
    "kind": {"type": "string", "enum": list(EVENT_KINDS)},
    "source": nullable(text("Who or what made the event (default `api`)", minLength=1,
                            maxLength=MAX_SOURCE_CHARS, pattern=NON_BLANK)),
    "data": nullable({"type": "object", "description": "The event's content, free-form (default `{}`)"}),
}, required=("kind",), title="CreateSpanEventRequest")
_TRACE = {**_TRACE_HEAD, "name": text("The root span's name"), "spans": array(SPAN), "events": array(EVENT)}
TRACE: JsonSchema = obj(_TRACE, required=tuple(_TRACE), title="Trace")
_ENVELOPE = "The object itself, both at the top level (2.1.1 reads it there) and under `data` (the spec's place)"


def _enveloped(fields: dict[str, JsonSchema], inner: JsonSchema, title: str) -> JsonSchema:
    return obj({**fields, "data": inner}, required=(*fields, "data"), title=title, description=_ENVELOPE)


SPAN_RESPONSE = _enveloped(_SPAN, SPAN, "SpanResponse")


def _span_envelope(span: SpanRecord) -> dict[str, Any]:
    body = v3_span(span)
    return {"data": body, **body}


async def post_span(req: V3Request) -> Response:
    span = await create_span(req.ctx.engine.spans, req.project_id, req.body)
    created = {"id": span.id, "trace_id": span.trace_id, "name": span.name, "parent_id": span.parent_id,
               "type": span.type}
    return JSONResponse({"data": created})


async def get_span(req: V3Request) -> Response:
    return JSONResponse(_span_envelope(await find_span(req.ctx.engine.spans, req.project_id, req.params["id"])))


async def patch_span(req: V3Request) -> Response:
    updated = await update_span(req.ctx.engine.spans, req.project_id, req.params["id"], req.body)
    return JSONResponse(_span_envelope(updated))


async def remove_span(req: V3Request) -> Response:
    await delete_span(req.ctx.engine.spans, req.project_id, req.params["id"])
    return Response(status_code=204)


def trace_body(trace_id: str, spans: list[SpanRecord], events: list[SpanEvent]) -> dict[str, Any]:
    """A trace from its spans (see `trace_head`), with them and every event on them."""
    return {**trace_head(trace_id, spans), "span_count": len(spans), "spans": [v3_span(span) for span in spans],
            "events": [event_body(event) for event in events]}


def event_body(event: SpanEvent) -> dict[str, Any]:
    return {"id": event.id, "span_id": event.span_id, "kind": event.kind, "source": event.source,
            "data": event.data, "created_at": event.created_at}


def _events_page(events: list[SpanEvent], total: int, req: V3Request) -> Response:
    return JSONResponse({
        "data": [event_body(event) for event in events],
        "meta": {"total_count": total, "total": total, "limit": req.query["limit"], "offset": req.query["offset"]},
    })


async def post_span_event(req: V3Request) -> Response:
    source = req.body.get("source") or "api"
    event = await req.ctx.engine.feedback.add_event(req.project_id, span_id(req.params["id"], "a span id"),
                                                    req.body["kind"], source, req.body.get("data") or {})
    return JSONResponse({"data": event_body(event)})


async def list_span_events(req: V3Request) -> Response:
    events, total = await req.ctx.engine.feedback.span_events(
        req.project_id, span_id(req.params["id"], "a span id"), req.query["kind"], req.query["limit"],
        req.query["offset"])
    return _events_page(events, total, req)


async def list_trace_events(req: V3Request) -> Response:
    trace_id = await _existing_trace(req)
    events, total = await req.ctx.engine.feedback.trace_events(
        req.project_id, trace_id, kind=req.query["kind"], limit=req.query["limit"], offset=req.query["offset"])
    return _events_page(events, total, req)


async def _existing_trace(req: V3Request) -> str:
    trace_id = span_id(req.params["id"], "a trace id")
    if not await req.ctx.engine.spans.trace_exists(req.project_id, trace_id):
        raise NotFoundError(f"trace '{trace_id}' was not found")
    return trace_id


async def list_traces(req: V3Request) -> Response:
    limit, offset = req.query["limit"], req.query["offset"]
    summaries, total = await req.ctx.engine.spans.list_traces(req.project_id, req.query["name"], limit, offset)
    return JSONResponse({
        "data": [trace_item(summary) for summary in summaries],
        "meta": {"total_count": total, "total": total, "limit": limit, "offset": offset},
    })


async def get_trace(req: V3Request) -> Response:
    trace_id = span_id(req.params["id"], "a trace id")
    spans = await req.ctx.engine.spans.get_trace(req.project_id, trace_id)
    if not spans:
        raise NotFoundError(f"trace '{trace_id}' was not found")
    events, _ = await req.ctx.engine.feedback.trace_events(req.project_id, trace_id)
    body = trace_body(trace_id, spans, events)
    return JSONResponse({"data": body, **body})


async def remove_trace(req: V3Request) -> Response:
    trace_id = span_id(req.params["id"], "a trace id")
    if not await req.ctx.engine.spans.delete_trace(req.project_id, trace_id):
        raise NotFoundError(f"trace '{trace_id}' was not found")
    return Response(status_code=204)


_SPAN_ID = (Param("id", STRING, "The span's id"),)
_TRACE_ID = (Param("id", STRING, "The trace's id"),)
_PAGE_META = obj({key: INTEGER for key in ("total_count", "total", "limit", "offset")},
                 required=("total_count", "total", "limit", "offset"))
_EVENT_PAGE = obj({"data": array(EVENT), "meta": _PAGE_META}, required=("data", "meta"), title="SpanEventPage")
_EVENT_QUERY = (Param("kind", {"type": "string", "enum": list(EVENT_KINDS)}, "Only events of this kind"),
                limit_param(100, 100), OFFSET)
OPERATIONS = [
    Operation("POST", "/v3/spans", "Create a span", post_span,
              {JSON: obj({"data": _CREATED}, required=("data",), title="CreateSpanResponse")},
              request=CREATE_SPAN_REQUEST, errors=(404, 409), tags=("spans",)),
    Operation("GET", "/v3/spans/{id}", "Get a span", get_span, {JSON: SPAN_RESPONSE}, path_params=_SPAN_ID,
              tags=("spans",)),
    Operation("PATCH", "/v3/spans/{id}", "Update a span", patch_span, {JSON: SPAN_RESPONSE}, path_params=_SPAN_ID,
              request=UPDATE_SPAN_REQUEST, tags=("spans",)),
    Operation("DELETE", "/v3/spans/{id}", "Delete a span", remove_span, {}, status=204, path_params=_SPAN_ID,
              tags=("spans",)),
    Operation("POST", "/v3/spans/{id}/events", "Record an event (guardrail, feedback, evaluation) on a span",
              post_span_event, {JSON: obj({"data": EVENT}, required=("data",), title="SpanEventResponse")},
              path_params=_SPAN_ID, request=CREATE_EVENT_REQUEST, tags=("spans",)),
    Operation("GET", "/v3/spans/{id}/events", "List a span's events, oldest first", list_span_events,
              {JSON: _EVENT_PAGE}, path_params=_SPAN_ID, query=_EVENT_QUERY, tags=("spans",)),
    Operation("GET", "/v3/traces/{id}/events", "List the events of every span in a trace, oldest first",
              list_trace_events, {JSON: _EVENT_PAGE}, path_params=_TRACE_ID, query=_EVENT_QUERY, tags=("traces",)),
    Operation("GET", "/v3/traces", "List traces", list_traces,
              {JSON: obj({"data": array(TRACE_SUMMARY), "meta": _PAGE_META}, required=("data", "meta"))},
              query=(Param("name", STRING, "Only traces whose name contains this, ignoring case"),
                     limit_param(100, 100), OFFSET), tags=("traces",)),
    Operation("GET", "/v3/traces/{id}", "Get a trace with its spans", get_trace,
              {JSON: _enveloped(_TRACE, TRACE, "TraceResponse")}, path_params=_TRACE_ID, tags=("traces",)),
    Operation("DELETE", "/v3/traces/{id}", "Delete a trace and its spans", remove_trace, {}, status=204,
              path_params=_TRACE_ID, tags=("traces",)),
]
