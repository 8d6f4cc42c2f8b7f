"""v3 generations (`/v3/generations`, opperai 2.1.1 `generations.list|get|delete`): the raw provider
request and response of each upstream call, linked to the call's span.

Bodies come back as the JSON they were, or, when cut at the capture bound, as the text kept with
`request_truncated` / `response_truncated` set. A stream's response is its events, in order, each
`{event, data}`, read from the body as it was received (a cut one gives the events it holds).
Paged by `page` and `page_size`; the meta carries `total` (spec) and `total_count` (2.1.1 reads it).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from taskgate.api.body_schemas import ANY, BOOLEAN, DATE_TIME, INTEGER, STRING, JsonSchema, array, nullable, obj
from taskgate.api.v3.routing import JSON, Operation, Param, V3Request
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.providers.upstream_http import SSEDecoder
from taskgate.server.request_io import MAX_SQL_INT, JSONResponse
from taskgate.store.base import GenerationRecord

MAX_PAGE_SIZE = 100
MAX_QUERY_CHARS = 500
_BODY = "The JSON body, or the text kept of it when it was cut (then the matching *_truncated is true)"
GENERATION: JsonSchema = obj({
    "id": STRING,
    "span_id": nullable(STRING),
    "trace_id": nullable(STRING),
    "provider": STRING,
    "model": nullable(STRING),
    "path": STRING,
    "stream": BOOLEAN,
    "status_code": nullable(INTEGER),
    "error": nullable(STRING),
    "request": {**ANY, "description": _BODY},
    "response": {**ANY, "description": _BODY + "; a stream's events as [{event, data}]"},
    "request_truncated": BOOLEAN,
    "response_truncated": BOOLEAN,
    "duration_ms": INTEGER,
    "created_at": DATE_TIME,
}, required=("id", "span_id", "trace_id", "provider", "model", "path", "stream", "status_code", "error", "request",
             "response", "request_truncated", "response_truncated", "duration_ms", "created_at"), title="Generation")
_META = obj({key: INTEGER for key in ("page", "page_size", "total", "total_count", "total_pages")},
            required=("page", "page_size", "total", "total_count", "total_pages"))
_ID = (Param("id", STRING, "The generation's id"),)
_QUERY = Param("query", {"type": "string", "maxLength": MAX_QUERY_CHARS},
               "Only generations whose model, bodies or error contain this text, ignoring case")
_PAGE = Param("page", {"type": "integer", "minimum": 1, "maximum": MAX_SQL_INT // MAX_PAGE_SIZE, "default": 1},
              "Page number, from 1")
_PAGE_SIZE = Param("page_size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 50},
                   "Items per page")


def _json_or_text(raw: str | bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # an error page that was not JSON, OpenAI's closing [DONE]
        return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


def _body(text: str | None, truncated: bool) -> Any:
    return text if text is None or truncated else _json_or_text(text)


def _events(text: str) -> list[dict[str, Any]]:
    """A stream's body (kept as received) read into its events; a cut body gives those it holds."""
    decoder = SSEDecoder()
    events = decoder.feed(text.encode()) + decoder.flush()
    return [{"event": event.event, "data": _json_or_text(event.data)} for event in events]


def _response(record: GenerationRecord) -> Any:
    if record.stream and record.status_code is not None and record.status_code < 400 and record.response is not None:
        return _events(record.response)
    return _body(record.response, record.response_truncated)


def generation_body(record: GenerationRecord) -> dict[str, Any]:
    return {
        "id": record.id, "span_id": record.span_id, "trace_id": record.trace_id, "provider": record.provider,
        "model": record.model, "path": record.path, "stream": record.stream, "status_code": record.status_code,
        "error": record.error, "request": _body(record.request, record.request_truncated),
        "response": _response(record),
        "request_truncated": record.request_truncated, "response_truncated": record.response_truncated,
        "duration_ms": record.duration_ms, "created_at": record.created_at.isoformat(),
    }


async def list_generations(req: V3Request) -> Response:
    query, page, size = req.query["query"], req.query["page"], req.query["page_size"]
    if query is not None and len(query) > MAX_QUERY_CHARS:
        raise BadRequestError(f"query parameter 'query' must be at most {MAX_QUERY_CHARS} characters")
    records, total = await req.ctx.engine.generations.page(req.project_id, query, size, (page - 1) * size)
    return JSONResponse({
        "data": [generation_body(record) for record in records],
        "meta": {"page": page, "page_size": size, "total": total, "total_count": total,
                 "total_pages": -(-total // size)},
    })


async def _found(req: V3Request) -> GenerationRecord:
    record = await req.ctx.engine.generations.get(req.project_id, req.params["id"])
    if record is None:
        raise NotFoundError(f"generation '{req.params['id'][:100]}' was not found")
    return record


async def get_generation(req: V3Request) -> Response:
    return JSONResponse(generation_body(await _found(req)))


async def delete_generation(req: V3Request) -> Response:
    if not await req.ctx.engine.generations.delete(req.project_id, req.params["id"]):
        raise NotFoundError(f"generation '{req.params['id'][:100]}' was not found")
    return JSONResponse({"deleted": True})


_TAGS = ("generations",)
OPERATIONS = [
    Operation("GET", "/v3/generations", "List recorded provider requests and responses", list_generations,
              {JSON: obj({"data": array(GENERATION), "meta": _META}, required=("data", "meta"))},
              query=(_QUERY, _PAGE, _PAGE_SIZE), tags=_TAGS),
    Operation("GET", "/v3/generations/{id}", "Get a recorded provider request and response", get_generation,
              {JSON: GENERATION}, path_params=_ID, tags=_TAGS),
    Operation("DELETE", "/v3/generations/{id}", "Delete a recorded generation", delete_generation,
              {JSON: obj({"deleted": BOOLEAN}, required=("deleted",))}, path_params=_ID, tags=_TAGS),
]
