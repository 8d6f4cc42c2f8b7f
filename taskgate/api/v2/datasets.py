"""v2 datasets (spec §7.2): the entries of a function's dataset, written, read and searched.

Entries are the function's few-shot examples (the rows v3 shows under
`/v3/functions/{name}/examples`), so an entry added here is a demonstration on the function's
next call. Inputs and outputs are any JSON and come back as strings: a string as it is, anything
else as its JSON text (the 1.7.2 models type them `str`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import optional, stored_id
from taskgate.api.v2.paging import MAX_LIMIT, page_of, paged
from taskgate.api.v2.wire_text import wire_text
from taskgate.errors import BadRequestError, RequestValidationError
from taskgate.server.request_io import JSONResponse, query_int, read_json_object
from taskgate.store.base import ExampleRecord

if TYPE_CHECKING:
    from taskgate.context import AppContext

DEFAULT_QUERY_LIMIT = 5
MAX_QUERY_CHARS = 10_000
_VALUES = ("input", "output", "expected")


def _text(value: Any) -> str:
    """A required string field of 1.7.2's entry: a null value goes out as JSON's `null`, as text."""
    text = wire_text(value)
    return "null" if text is None else text


def entry_body(entry: ExampleRecord) -> dict[str, Any]:
    """GetDatasetEntryResponse: `{id, input, output, expected?, comment?}`, values as strings."""
    return {"id": entry.id, "input": _text(entry.input), "output": _text(entry.output),
            "expected": wire_text(entry.expected), "comment": entry.comment}


def _comment(body: dict[str, Any]) -> str | None:
    return optional(body, "comment", str, "a string or null", error=RequestValidationError)


def _ids(request: Request) -> tuple[str, str | None]:
    """The dataset id and, when the path has one, the entry id: unknown shapes are 404s."""
    entry_id = request.path_params.get("entry_id")
    return (stored_id(request.path_params["dataset_id"], "dataset"),
            stored_id(entry_id, "entry") if entry_id is not None else None)


async def create_entry(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    missing = [key for key in ("input", "output") if key not in body]
    if missing:
        raise RequestValidationError(f"{' and '.join(repr(key) for key in missing)} required")
    dataset_id, _ = _ids(request)
    entry = ExampleRecord(id="", function_id="", input=body["input"], output=body["output"],
                          expected=body.get("expected"), comment=_comment(body))
    return JSONResponse(entry_body(await ctx.engine.datasets.add(project_id, dataset_id, entry)))


async def list_entries(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    dataset_id, _ = _ids(request)
    page = page_of(request)
    entries, total = await ctx.engine.datasets.page(project_id, dataset_id, page.limit, page.offset)
    return JSONResponse(paged([entry_body(entry) for entry in entries], total))


async def get_entry(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    dataset_id, entry_id = _ids(request)
    assert entry_id is not None
    return JSONResponse(entry_body(await ctx.engine.datasets.get(project_id, dataset_id, entry_id)))


async def update_entry(ctx: AppContext, request: Request) -> Response:
    """Absent fields are kept; a given one (null too) is set."""
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    dataset_id, entry_id = _ids(request)
    assert entry_id is not None
    changes = {key: body[key] for key in _VALUES if key in body}
    if "comment" in body:
        changes["comment"] = _comment(body)
    return JSONResponse(entry_body(await ctx.engine.datasets.update(project_id, dataset_id, entry_id, changes)))


async def delete_entry(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    dataset_id, entry_id = _ids(request)
    assert entry_id is not None
    await ctx.engine.datasets.delete(project_id, dataset_id, entry_id)
    return Response(status_code=204)


async def query_entries(ctx: AppContext, request: Request) -> Response:
    """`?query=…&limit=…` (query string, limit 5 by default): the closest entries, as a bare list."""
    project_id = await ctx.auth.project_for(request)
    dataset_id, _ = _ids(request)
    text = request.query_params.get("query")
    if not text or not text.strip():
        raise BadRequestError("query parameter 'query' is required and must not be blank")
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequestError(f"query parameter 'query' must be at most {MAX_QUERY_CHARS} characters")
    limit = min(query_int(request, "limit", DEFAULT_QUERY_LIMIT), MAX_LIMIT)
    entries = await ctx.engine.datasets.query(project_id, dataset_id, text, limit)
    return JSONResponse([entry_body(entry) for entry in entries])
