"""v3 functions and revisions: the stored functions v2 `/call` creates, seen through the v3 shape.

v3 calls a function's body its "script" (`source`). A Taskgate script is the function's prompt:
`source` is its instructions, `PUT {source}` makes a new revision with that prompt, and later
calls that omit `instructions` use it. Every read and write goes through the engine's function
service, which keeps what the engine remembers of a function in step with its changes.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from taskgate.api.body_schemas import (
    BOOLEAN,
    DATE_TIME,
    INTEGER,
    NON_BLANK,
    OBJECT,
    STRING,
    JsonSchema,
    array,
    obj,
    text,
)
from taskgate.api.v3.routing import JSON, OFFSET, Operation, Param, V3Request, limit_param
from taskgate.api.v3.run_shapes import FUNCTION_NAME, function_name
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.server.request_io import MAX_SQL_INT, JSONResponse, ascii_int
from taskgate.store.base import FunctionRecord, RevisionRecord

_HEAD: dict[str, JsonSchema] = {
    "name": STRING,
    "schema_hash": text("A hash of the function's input and output schemas"),
    "generated_at": {**DATE_TIME, "description": "When the current revision was made"},
    "hit_count": INTEGER,
}
FUNCTION_INFO: JsonSchema = obj({**_HEAD, "has_script": BOOLEAN}, required=(*_HEAD, "has_script"),
                                title="FunctionInfo")
_SCRIPT: dict[str, JsonSchema] = {
    "source": text("The function's prompt (v3 calls it its script)"),
    "input_schema": OBJECT,
    "output_schema": OBJECT,
}
_DETAILS = {**_HEAD, **_SCRIPT, "revision_id": {**INTEGER, "description": "The current revision's number"}}
FUNCTION_DETAILS: JsonSchema = obj(_DETAILS, required=tuple(_DETAILS), title="FunctionDetails")
_REVISION: dict[str, JsonSchema] = {
    "revision_id": INTEGER,
    "created_at": DATE_TIME,
    "schema_hash": STRING,
    "is_current": BOOLEAN,
}
REVISION_INFO: JsonSchema = obj(_REVISION, required=tuple(_REVISION), title="RevisionInfo")
_FULL_REVISION = {**_REVISION, **_SCRIPT}
FUNCTION_REVISION: JsonSchema = obj(_FULL_REVISION, required=tuple(_FULL_REVISION), title="FunctionRevision")
UPDATE_FUNCTION_REQUEST: JsonSchema = obj({
    "source": text("The new prompt; it becomes a new revision", minLength=1, pattern=NON_BLANK),
}, required=("source",), title="UpdateFunctionRequest")
REVISION_ID = Param("revision_id", {"type": "integer", "minimum": 1, "maximum": MAX_SQL_INT}, "A revision's number")


def _function_head(record: FunctionRecord) -> dict[str, Any]:
    """The fields a function's list entry and its full view both start with."""
    return {
        "name": record.name,
        "schema_hash": record.schema_hash,
        "generated_at": record.updated_at,
        "hit_count": record.hit_count,
    }


def function_info(record: FunctionRecord) -> dict[str, Any]:
    return {**_function_head(record), "has_script": True}


def function_details(record: FunctionRecord) -> dict[str, Any]:
    return {
        **_function_head(record),
        "source": record.definition.instructions,
        "input_schema": record.definition.input_schema or {},
        "output_schema": record.definition.output_schema or {},
        "revision_id": record.revision_number,
    }


def revision_info(record: RevisionRecord) -> dict[str, Any]:
    return {
        "revision_id": record.number,
        "created_at": record.created_at,
        "schema_hash": record.schema_hash,
        "is_current": record.is_current,
    }


def revision_details(record: RevisionRecord) -> dict[str, Any]:
    return {
        "revision_id": record.number,
        "source": record.definition.instructions,
        "schema_hash": record.schema_hash,
        "created_at": record.created_at,
        "input_schema": record.definition.input_schema or {},
        "output_schema": record.definition.output_schema or {},
        "is_current": record.is_current,
    }


async def require_function(req: V3Request) -> FunctionRecord:
    name = function_name(req.params["name"])
    record = await req.ctx.engine.functions.get(req.project_id, name)
    if record is None:
        raise _missing(name)
    return record


def _missing(name: str) -> NotFoundError:
    return NotFoundError(f"function '{name}' not found")


def _revision_number(req: V3Request) -> int:
    raw = req.params["revision_id"]
    number = ascii_int(raw)
    if number is None or not 1 <= number <= MAX_SQL_INT:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadRequestError(f"revision id must be an integer from 1 to {MAX_SQL_INT}, got '{shown}'")
    return number


async def list_functions(req: V3Request) -> Response:
    records = await req.ctx.engine.functions.page(req.project_id, req.query["limit"], req.query["offset"])
    return JSONResponse({"functions": [function_info(record) for record in records]})


async def get_function(req: V3Request) -> Response:
    return JSONResponse(function_details(await require_function(req)))


async def update_function(req: V3Request) -> Response:
    name = function_name(req.params["name"])
    updated = await req.ctx.engine.functions.set_instructions(req.project_id, name, req.body["source"])
    if updated is None:
        raise _missing(name)
    return JSONResponse(function_details(updated))


async def delete_function(req: V3Request) -> Response:
    name = function_name(req.params["name"])
    if not await req.ctx.engine.functions.delete(req.project_id, name):
        raise _missing(name)
    return Response(status_code=204)


async def list_revisions(req: V3Request) -> Response:
    record = await require_function(req)
    revisions = await req.ctx.engine.functions.revisions(req.project_id, record.name)
    return JSONResponse({"revisions": [revision_info(revision) for revision in revisions]})


async def get_revision(req: V3Request) -> Response:
    number = _revision_number(req)
    record = await require_function(req)
    revision = await req.ctx.engine.functions.revision(req.project_id, record.name, number)
    if revision is None:
        raise NotFoundError(f"function '{record.name}' has no revision {number}")
    return JSONResponse(revision_details(revision))


async def revert_revision(req: V3Request) -> Response:
    number = _revision_number(req)
    record = await require_function(req)
    reverted = await req.ctx.engine.functions.revert(req.project_id, record.name, number)
    if reverted is None:
        raise NotFoundError(f"function '{record.name}' has no revision {number}")
    return JSONResponse(function_details(reverted))


_TAGS = ("functions",)
_NAMED = (FUNCTION_NAME,)
OPERATIONS = [
    Operation("GET", "/v3/functions", "List functions", list_functions,
              {JSON: obj({"functions": array(FUNCTION_INFO)}, required=("functions",))},
              query=(limit_param(100, 1000), OFFSET), tags=_TAGS),
    Operation("GET", "/v3/functions/{name}", "Get a function and its prompt (source)", get_function,
              {JSON: FUNCTION_DETAILS}, path_params=_NAMED, tags=_TAGS),
    Operation("PUT", "/v3/functions/{name}", "Replace a function's prompt (source)", update_function,
              {JSON: FUNCTION_DETAILS}, path_params=_NAMED, request=UPDATE_FUNCTION_REQUEST, tags=_TAGS),
    Operation("DELETE", "/v3/functions/{name}", "Delete a function", delete_function, {}, status=204,
              path_params=_NAMED, tags=_TAGS),
    Operation("GET", "/v3/functions/{name}/revisions", "List revisions", list_revisions,
              {JSON: obj({"revisions": array(REVISION_INFO)}, required=("revisions",))}, path_params=_NAMED,
              tags=_TAGS),
    Operation("GET", "/v3/functions/{name}/revisions/{revision_id}", "Get a revision", get_revision,
              {JSON: FUNCTION_REVISION}, path_params=(FUNCTION_NAME, REVISION_ID), tags=_TAGS),
    Operation("POST", "/v3/functions/{name}/revisions/{revision_id}/revert", "Revert to a revision",
              revert_revision, {JSON: FUNCTION_DETAILS}, path_params=(FUNCTION_NAME, REVISION_ID), tags=_TAGS),
]
