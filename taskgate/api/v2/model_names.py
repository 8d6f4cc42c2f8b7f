"""`/models/custom` and `/models/aliases`: a project's own model names, as opperai 1.7.2's
`language_models` methods use them. A custom model is `{id, name, identifier, extra}` (its api_key
is taken, never shown); an alias is `{id, name, fallback_models, description}`. Both are used by
name wherever a model is named (the engine resolves them: engine/model_names.py).

The body's types are checked here (a wrong one is a 422, as for every v2 body field); what the
values mean (the endpoint URL, loops between aliases) is the engine's to judge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import identifier
from taskgate.api.v2.paging import page_of, paged
from taskgate.engine.model_chains import MAX_CHAIN_MODELS
from taskgate.engine.models import MAX_MODEL_NAME_CHARS
from taskgate.errors import NotFoundError, RequestValidationError
from taskgate.server.dispatch import Endpoint
from taskgate.server.request_io import JSONResponse, read_json_object
from taskgate.store.base import CustomModelRecord, ModelAliasRecord, ModelNameKind, ModelNameRecord

if TYPE_CHECKING:
    from taskgate.context import AppContext

MAX_DESCRIPTION_CHARS = 4096
CUSTOM_FIELDS = ("name", "identifier", "extra", "api_key")
ALIAS_FIELDS = ("name", "fallback_models", "description")


def custom_model_body(record: CustomModelRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "identifier": record.identifier, "extra": record.extra}


def alias_body(record: ModelAliasRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "fallback_models": record.fallback_models,
            "description": record.description}


def _shape(record: ModelNameRecord) -> dict[str, Any]:
    return custom_model_body(record) if isinstance(record, CustomModelRecord) else alias_body(record)


# ---------------------------------------------------------------- body fields

def _known_fields(body: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RequestValidationError(f"unknown fields {unknown}; the body may have {', '.join(fields)}")


def _model_name(value: Any, what: str) -> str:
    """A name a call will use: the same rules as a model named in a call, and no surrounding
    spaces (a call's model name is trimmed, so such a name could never be called)."""
    if not isinstance(value, str):
        raise RequestValidationError(f"{what} must be a string")
    identifier(value, what, MAX_MODEL_NAME_CHARS, error=RequestValidationError)
    if value != value.strip():
        raise RequestValidationError(f"{what} must not start or end with spaces")
    return value


def _given(body: Mapping[str, Any], key: str, check: Callable[[Any], Any], *,
           null_clears: bool = False) -> dict[str, Any]:
    """{key: checked value} when the body has the key; a null means "leave as it is", or "clear"
    where `null_clears`."""
    if key not in body:
        return {}
    if body[key] is None:
        return {key: None} if null_clears else {}
    return {key: check(body[key])}


def _extra(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestValidationError("'extra' must be an object")
    return value


def _api_key(value: Any) -> str:
    if not isinstance(value, str):
        raise RequestValidationError("'api_key' must be a string or null")
    return value


def _fallback_models(value: Any) -> list[str]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_CHAIN_MODELS:
        raise RequestValidationError(f"'fallback_models' must be a list of 1 to {MAX_CHAIN_MODELS} model names")
    return [_model_name(entry, f"fallback_models[{index}]") for index, entry in enumerate(value)]


def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_CHARS:
        raise RequestValidationError(f"'description' must be a string of at most {MAX_DESCRIPTION_CHARS} characters")
    return value


def _custom_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    _known_fields(body, CUSTOM_FIELDS)
    return {**_given(body, "name", lambda v: _model_name(v, "'name'")),
            **_given(body, "identifier", lambda v: _model_name(v, "'identifier'")),
            **_given(body, "extra", _extra),
            **_given(body, "api_key", _api_key, null_clears=True)}


def _alias_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    _known_fields(body, ALIAS_FIELDS)
    return {**_given(body, "name", lambda v: _model_name(v, "'name'")),
            **_given(body, "fallback_models", _fallback_models),
            **_given(body, "description", _description, null_clears=True)}


def _path_value(request: Request, key: str) -> str:
    """An id or name from the path. One no object can have (too long, or holding characters a
    name may not hold, such as a NUL, which Postgres cannot even compare) names nothing: 404."""
    value: str = request.path_params[key]
    if len(value) > MAX_MODEL_NAME_CHARS or not value.isprintable():
        raise NotFoundError(f"no object has the {key} {value[:40]!r}")
    return value


def _required(changes: Mapping[str, Any], *keys: str) -> None:
    for key in keys:
        if changes.get(key) is None:
            raise RequestValidationError(f"'{key}' is required")


# ---------------------------------------------------------------- the handlers of each kind

Handler = Callable[["AppContext", Request], Awaitable[Response]]


def handlers(kind: ModelNameKind, id_param: str, parse: Callable[[Mapping[str, Any]], dict[str, Any]],
             required: tuple[str, ...]) -> dict[str, Handler]:
    """The create, list, get, get-by-name, update and delete handlers of `kind`, whose body fields
    `parse` reads (`required` ones must be given to create) and whose path names its id `id_param`."""

    async def create(ctx: AppContext, request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        fields = parse(await read_json_object(request, ctx.settings.max_body_bytes))
        _required(fields, *required)
        return JSONResponse(_shape(await ctx.engine.model_names.create(kind, project_id, fields)))

    async def list_all(ctx: AppContext, request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        page = page_of(request)
        records, total = await ctx.engine.model_names.page(kind, project_id, page.limit, page.offset)
        return JSONResponse(paged([_shape(record) for record in records], total))

    async def get(ctx: AppContext, request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        return JSONResponse(_shape(await ctx.engine.model_names.get(kind, project_id,
                                                                    id=_path_value(request, id_param))))

    async def get_by_name(ctx: AppContext, request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        return JSONResponse(_shape(await ctx.engine.model_names.get(kind, project_id,
                                                                    name=_path_value(request, "name"))))

    async def update(ctx: AppContext, request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        changes = parse(await read_json_object(request, ctx.settings.max_body_bytes))
        record = await ctx.engine.model_names.update(kind, project_id, _path_value(request, id_param), changes)
        return JSONResponse(_shape(record))

    async def delete(ctx: AppContext, request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        await ctx.engine.model_names.delete(kind, project_id, _path_value(request, id_param))
        return Response(status_code=204)

    return {"create": create, "list": list_all, "get": get, "get_by_name": get_by_name, "update": update,
            "delete": delete}


CUSTOM = handlers("custom_model", "model_id", _custom_changes, ("name", "identifier"))
ALIASES = handlers("model_alias", "alias_id", _alias_changes, ("name", "fallback_models"))


def endpoints(path: str, id_param: str, kind: Mapping[str, Handler]) -> list[Endpoint[AppContext]]:
    """The routes of one kind under `path` (a name may hold `/`, so by-name takes the rest of the path)."""
    return [
        Endpoint("POST", path, kind["create"]),
        Endpoint("GET", path, kind["list"]),
        Endpoint("GET", f"{path}/by-name/{{name:path}}", kind["get_by_name"]),
        Endpoint("GET", f"{path}/{{{id_param}}}", kind["get"]),
        Endpoint("PATCH", f"{path}/{{{id_param}}}", kind["update"]),
        Endpoint("DELETE", f"{path}/{{{id_param}}}", kind["delete"]),
    ]
