"""v2 functions (spec §7.1): create, list, read, change and delete stored functions by id, see
their revisions, and call them as stored.

These are the functions `/v2/call` makes by name and v3 shows under `/v3/functions/{name}`: one
store, one revision history, reached only through the engine's function service. A change to the
definition (prompt, description, schemas, model, configuration) makes a new revision; a rename or
an unchanged PATCH does not. A call at an older revision runs that revision and writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import identifier, optional, stored_id
from taskgate.api.v2 import calls
from taskgate.api.v2.paging import page_of, paged
from taskgate.api.v3.run_shapes import function_name
from taskgate.engine.functions import config_of, stored_configuration
from taskgate.engine.models import parse_model_field
from taskgate.engine.schemas import compile_schema
from taskgate.engine.task import Task, TaskConfig
from taskgate.engine.xml_shapes import xml_shape
from taskgate.errors import BadRequestError, NotFoundError, RequestValidationError
from taskgate.server.request_io import JSONResponse, read_json_object
from taskgate.store.base import FunctionDefinition, FunctionRecord, RevisionRecord

if TYPE_CHECKING:
    from taskgate.context import AppContext

SORTS = ("name", "-name", "created_at", "-created_at")
MAX_NAME_FILTER_CHARS = 256


def function_body(record: FunctionRecord) -> dict[str, Any]:
    """FunctionResponse (Create/Get/UpdateFunctionResponse of Appendix A)."""
    definition = record.definition
    return {
        "id": record.id,
        "name": record.name,
        "description": definition.description,
        "instructions": definition.instructions,
        "input_schema": definition.input_schema,
        "output_schema": definition.output_schema,
        "model": definition.model,
        "configuration": calls.configuration_body(_config(record)),
        "dataset_id": record.dataset_id,
        "revision_id": record.revision_id,
        "observer_enabled": True,
    }


def _config(record: FunctionRecord) -> TaskConfig:
    """The settings a call of `record` runs with: its definition's, and the function's few-shot count."""
    config = config_of(record.definition)
    config.few_shot_count = record.few_shot_count
    return config


def list_item(record: FunctionRecord) -> dict[str, Any]:
    definition = record.definition
    return {"id": record.id, "name": record.name, "revision_id": record.revision_id,
            "description": definition.description, "instructions": definition.instructions,
            "model": definition.model}


def _revision_item(revision: RevisionRecord) -> dict[str, Any]:
    return {"id": revision.id, "configuration": calls.configuration_body(config_of(revision.definition)),
            "created_at": revision.created_at, "updated_at": None}


def _name(value: Any) -> str:
    return function_name(value.strip() if isinstance(value, str) else value, error=RequestValidationError)


def _schema(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A JSON Schema field, refused (400) now if it could not be used by a call later."""
    schema = optional(body, key, dict, "an object or null", error=RequestValidationError)
    if schema is not None:
        compile_schema(schema, key)
    return schema


def _model(body: dict[str, Any]) -> Any:
    """The model field as written (kept so, and shown back so), once it parses as a chain."""
    model = body.get("model")
    parse_model_field(model)
    return model


def _definition(body: dict[str, Any], base: FunctionRecord | None) -> tuple[FunctionDefinition, TaskConfig]:
    """The definition and settings a create (`base` None) or PATCH body asks for. In a PATCH, an
    absent field keeps its value; null clears description, schemas and model, and leaves the
    instructions (which cannot be empty) and the configuration as they are."""
    current = base.definition if base is not None else FunctionDefinition(instructions="")
    instructions = optional(body, "instructions", str, "a string", error=RequestValidationError)
    if (base is None or instructions is not None) and not (instructions or "").strip():
        raise RequestValidationError("'instructions' must be a non-empty string (and is required on create)")
    description = optional(body, "description", str, "a string or null", error=RequestValidationError)
    configuration = optional(body, "configuration", dict, "an object or null", error=RequestValidationError)
    config = calls.parse_configuration(configuration or {}, _config(base) if base is not None else None,
                                       function_setting=True)
    definition = FunctionDefinition(
        instructions=instructions or current.instructions,
        input_schema=_schema(body, "input_schema") if "input_schema" in body else current.input_schema,
        output_schema=_schema(body, "output_schema") if "output_schema" in body else current.output_schema,
        model=_model(body) if "model" in body else current.model,
        configuration=stored_configuration(config),
        description=description if "description" in body else current.description,
        source=current.source,
    )
    if config.xml_mode:
        xml_shape(definition.output_schema)
    return definition, config


async def _function(ctx: AppContext, project_id: str, request: Request) -> FunctionRecord:
    """The function the path names, at the revision it names if it names one; 404 otherwise."""
    function_id = stored_id(request.path_params["function_id"], "function")
    revision_id = request.path_params.get("revision_id")
    if revision_id is None:
        record = await ctx.engine.functions.by_id(project_id, function_id)
    else:
        record = await ctx.engine.functions.at_revision(project_id, function_id, stored_id(revision_id, "revision"))
    if record is None:
        raise _missing(function_id, revision_id)
    return record


def _missing(function: str, revision_id: str | None = None) -> NotFoundError:
    at = f" revision '{revision_id}'" if revision_id is not None else ""
    return NotFoundError(f"function '{function}'{at} not found")


async def create(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    name = _name(body.get("name"))
    definition, config = _definition(body, None)
    record = await ctx.engine.functions.create(project_id, name, definition, config.few_shot_count)
    return JSONResponse(function_body(record), status_code=201)


async def list_functions(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    page = page_of(request)
    sort = request.query_params.get("sort") or "name"
    if sort not in SORTS:
        raise BadRequestError(f"query parameter 'sort' must be one of {', '.join(SORTS)}")
    name = request.query_params.get("name") or None
    if name is not None:
        identifier(name, "query parameter 'name'", MAX_NAME_FILTER_CHARS)
    records, total = await ctx.engine.functions.listing(project_id, name, sort, page.limit, page.offset)
    return JSONResponse(paged([list_item(record) for record in records], total))


async def get(ctx: AppContext, request: Request) -> Response:
    """`/functions/{id}`, and `/functions/{id}/revisions/{revision_id}`: the function at that revision."""
    project_id = await ctx.auth.project_for(request)
    return JSONResponse(function_body(await _function(ctx, project_id, request)))


async def get_by_name(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    name = function_name(request.path_params["name"])
    record = await ctx.engine.functions.get(project_id, name)
    if record is None:
        raise _missing(name)
    return JSONResponse(function_body(record))


async def update(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    current = await _function(ctx, project_id, request)
    name = _name(body["name"]) if body.get("name") is not None else current.name
    definition, config = _definition(body, current)
    updated = await ctx.engine.functions.update(project_id, current, name, definition, config.few_shot_count)
    if updated is None:
        raise _missing(current.id)
    return JSONResponse(function_body(updated))


async def delete(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    function_id = stored_id(request.path_params["function_id"], "function")
    if not await ctx.engine.functions.delete_by_id(project_id, function_id):
        raise _missing(function_id)
    return Response(status_code=204)


async def list_revisions(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    function_id = stored_id(request.path_params["function_id"], "function")
    page = page_of(request)
    found = await ctx.engine.functions.revisions_page(project_id, function_id, page.limit, page.offset)
    if found is None:
        raise _missing(function_id)
    revisions, total = found
    return JSONResponse(paged([_revision_item(revision) for revision in revisions], total))


async def _stored_task(ctx: AppContext, request: Request) -> Task:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    return calls.parse_stored_call(body, project_id, await _function(ctx, project_id, request))


async def call(ctx: AppContext, request: Request) -> Response:
    """`/functions/{id}/call` and `/functions/{id}/call/{revision_id}`."""
    return await calls.answer(ctx, request, await _stored_task(ctx, request))


async def stream(ctx: AppContext, request: Request) -> Response:
    """`/functions/{id}/call/stream[/{revision_id}]`: deltas are strings, as 1.7.2 types them here."""
    return await calls.answer_stream(ctx, request, await _stored_task(ctx, request), text_deltas=True)
