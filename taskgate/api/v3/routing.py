"""The v3 operation table: one list that routes requests, checks them and becomes the OpenAPI document.

An `Operation` is the v3 form of a route table entry (`taskgate.server.dispatch.Endpoint`: a
method, a path and a handler). Each one also carries the JSON Schema of its request body and of
its responses, and the definitions of its path and query parameters. The router checks a request
body against that very schema (compiled once, at import) and parses the query string with those
very definitions before the handler runs, so `/v3/openapi.json` can only describe what the server
really accepts and answers. Function-scoped operations (`/v3/functions/{name}/...`) cannot be plain Starlette
routes, because a function name may contain `/` (2.1.1 sends it as `%2F`, which the ASGI server
has already decoded), so they are matched here, most specific suffix first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from taskgate.api.body_schemas import STRING, BodyGate, JsonSchema, nullable, obj
from taskgate.errors import BadRequestError, MethodNotAllowedError, NotFoundError
from taskgate.server.request_io import MAX_SQL_INT, Handler, guarded, query_int, read_json
from taskgate.telemetry.metrics import ROUTE_TEMPLATE

if TYPE_CHECKING:
    from taskgate.context import AppContext

FUNCTION_PREFIX = "/v3/functions/"
_PARAM = re.compile(r"\{(\w+)\}")
JSON = "application/json"
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter. Its schema is what the document publishes and, for a query
    parameter, what `parse` reads the query string by: type, default, bounds and allowed values."""

    name: str
    schema: JsonSchema
    description: str

    def parse(self, request: Request) -> Any:
        """The query value as the handler wants it; absent or empty means the default."""
        kind = self.schema.get("type")
        if kind == "integer":
            return query_int(request, self.name, self.schema["default"], minimum=self.schema["minimum"],
                             maximum=self.schema.get("maximum", MAX_SQL_INT))
        raw = request.query_params.get(self.name)
        if raw is None or raw == "":
            return self.schema.get("default")
        if kind == "boolean":
            return _flag(raw, self.name)
        allowed = self.schema.get("enum")
        if allowed is not None and raw not in allowed:
            raise BadRequestError(f"query parameter '{self.name}' must be one of {', '.join(allowed)}")
        return raw


def limit_param(default: int, maximum: int) -> Param:
    return Param("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
                 "How many to return at most")


OFFSET = Param("offset", {"type": "integer", "minimum": 0, "maximum": MAX_SQL_INT, "default": 0}, "How many to skip")


def _flag(raw: str, name: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise BadRequestError(f"query parameter '{name}' must be true or false, got '{raw}'")


@dataclass(slots=True)
class V3Request:
    """What a v3 handler gets: the app, the request, its path parameters, the caller's project,
    the parsed query parameters and the request body, already checked against its schema."""

    ctx: AppContext
    request: Request
    params: dict[str, str]
    project_id: str  # empty for operations that need no key
    query: dict[str, Any]
    body: Any  # None for operations without a request body


V3Handler = Callable[[V3Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One v3 operation: how it is routed, what it accepts and what it answers."""

    method: str
    path: str  # OpenAPI template; `{name}` in a function path may contain slashes
    summary: str
    handler: V3Handler
    response: Mapping[str, JsonSchema]  # media type -> schema of the success body; empty for none
    auth: bool = True
    status: int = 200
    path_params: tuple[Param, ...] = ()
    query: tuple[Param, ...] = ()
    request: JsonSchema | None = None  # the request body's schema; the router checks every body against it
    errors: tuple[int, ...] = ()  # error statuses beyond the ones `_error_statuses` derives
    tags: tuple[str, ...] = ()
    gate: BodyGate | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        declared = [param.name for param in self.path_params]
        if declared != _PARAM.findall(self.path):
            raise ValueError(f"{self.method} {self.path} declares path parameters {declared}")
        if self.request is not None:
            object.__setattr__(self, "gate", BodyGate(self.request))

    @property
    def function_scoped(self) -> bool:
        return self.path.startswith(FUNCTION_PREFIX + "{name}")


async def _run(ctx: AppContext, op: Operation, request: Request, params: dict[str, str]) -> Response:
    """Authenticate, parse the query, read and check the body, then call the handler."""
    project_id = await ctx.auth.project_for(request) if op.auth else ""
    query = {param.name: param.parse(request) for param in op.query}
    body = None
    if op.gate is not None:
        body = await read_json(request, ctx.settings.max_body_bytes)
        op.gate.check(body)
    return await op.handler(V3Request(ctx, request, params, project_id, query, body))


def _endpoint(ctx: AppContext, op: Operation) -> Handler:
    async def handle(request: Request) -> Response:
        return await _run(ctx, op, request, dict(request.path_params))

    handle.__name__ = op.handler.__name__
    return guarded(handle)


def _pattern(path: str) -> re.Pattern[str]:
    """`/v3/functions/{name}/revisions/{revision_id}` -> a regex; only `name` may span segments."""
    out, last = [], 0
    for match in _PARAM.finditer(path):
        out.append(re.escape(path[last:match.start()]))
        name = match.group(1)
        out.append(f"(?P<{name}>.+)" if name == "name" else f"(?P<{name}>[^/]+)")
        last = match.end()
    out.append(re.escape(path[last:]))
    return re.compile("".join(out))


def _specificity(op: Operation) -> int:
    return len(_PARAM.sub("", op.path))


def _function_dispatcher(ctx: AppContext, ops: Sequence[Operation]) -> Handler:
    table = [(op, _pattern(op.path)) for op in sorted(ops, key=_specificity, reverse=True)]

    async def dispatch(request: Request) -> Response:
        path = FUNCTION_PREFIX + request.path_params["rest"]
        allowed = []
        for op, pattern in table:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if op.method == request.method:
                request.scope[ROUTE_TEMPLATE] = op.path  # the metrics' route label, finer than the catch-all's
                return await _run(ctx, op, request, match.groupdict())
            allowed.append(op.method)
        if allowed:
            raise MethodNotAllowedError(request.method, path, allowed)
        raise NotFoundError(f"no v3 operation matches {request.method} {path}")

    return guarded(dispatch)


class _AnyMethod:
    """A handler as a plain ASGI app: a Route given one matches every method, so the dispatcher,
    not Starlette, decides between a 405 (with the methods of the path it matched) and a 404."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handler(Request(scope, receive))
        await response(scope, receive, send)


def build_routes(ctx: AppContext, operations: Sequence[Operation]) -> list[BaseRoute]:
    """Plain routes for fixed paths, plus one catch-all for every function-scoped operation."""
    routes: list[BaseRoute] = []
    for op in operations:
        if not op.function_scoped:
            routes.append(Route(op.path, _endpoint(ctx, op), methods=[op.method]))
    scoped = [op for op in operations if op.function_scoped]
    if scoped:
        routes.append(Route(FUNCTION_PREFIX + "{rest:path}", _AnyMethod(_function_dispatcher(ctx, scoped))))
    return routes


def openapi_document(operations: Sequence[Operation], version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document of exactly the operations in the table, with their bodies' schemas.
    Schemas with a `title` become named components, referenced wherever they appear."""
    components: dict[str, JsonSchema] = {}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.handler.__name__.strip("_"),
            "security": [{"bearerAuth": []}] if op.auth else [],
        }
        if op.tags:
            entry["tags"] = list(op.tags)
        parameters = [_parameter(param, "path", components) for param in op.path_params]
        parameters += [_parameter(param, "query", components) for param in op.query]
        if parameters:
            entry["parameters"] = parameters
        if op.request is not None:
            entry["requestBody"] = {"required": True, "content": {JSON: {"schema": _refs(op.request, components)}}}
        entry["responses"] = _responses(op, components)
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Taskgate Task API", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(components.items())),
        },
    }


def _parameter(param: Param, location: str, components: dict[str, JsonSchema]) -> dict[str, Any]:
    parameter = {"name": param.name, "in": location, "required": location == "path",
                 "description": param.description, "schema": _refs(param.schema, components)}
    if location == "query":
        parameter["allowEmptyValue"] = True  # `?limit=` means the default, as if it were absent
    return parameter


_SUBSCHEMA_KEYWORDS = ("items", "additionalProperties", "not", "contentSchema")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def _refs(schema: Any, components: dict[str, JsonSchema]) -> Any:
    """`schema` with every titled schema in it (itself included) replaced by a reference to its
    component. Only the keywords that hold schemas are walked, never `enum`, `default` or examples."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {key: _refs(value, components) for key, value in schema["properties"].items()}
    for keyword in _SUBSCHEMA_KEYWORDS:
        if keyword in schema:
            out[keyword] = _refs(schema[keyword], components)
    for keyword in _SUBSCHEMA_LISTS:
        if keyword in schema:
            out[keyword] = [_refs(item, components) for item in schema[keyword]]
    title = schema.get("title")
    if title is None:
        return out
    if components.setdefault(title, out) != out:
        raise ValueError(f"two different schemas are titled {title!r}")
    return {"$ref": f"#/components/schemas/{title}"}


ERROR_RESPONSE: JsonSchema = obj({
    "type": {"type": "string", "description": "The error's class, e.g. NotFoundError (v2 clients read it)"},
    "message": {"type": "string", "description": "The general message of that class"},
    "detail": {"type": "string", "description": "What went wrong with this request"},
    "error": obj({
        "code": {"type": "string", "description": "A stable code, e.g. not_found or invalid_schema"},
        "message": {"type": "string", "description": "The same text as `detail`"},
        "type": STRING,
        "details": nullable({"description": "More about the error, when there is more"}),
    }, required=("code", "message", "type", "details")),
}, required=("type", "message", "detail", "error"), title="ErrorResponse",
    description="The error body both SDK generations parse: v2's {type, message, detail} and v3's {error}")

_ERROR_DESCRIPTIONS = {
    400: "The request is invalid: its body, a parameter, or a schema in it",
    401: "Missing or invalid API key",
    404: "Not found",
    408: "The request body did not arrive in time",
    409: "The resource already exists",
    413: "The request body is too large",
    429: "Every model was rate limited upstream",
    500: "Internal server error",
    502: "Every model's provider failed",
    503: "The server is busy (local model queue full); retry after `Retry-After` seconds",
    504: "Every model's provider timed out",
}


def _error_statuses(op: Operation) -> list[int]:
    """The error statuses an operation can answer: 400 when it takes anything a caller can get
    wrong, 401 with a key, 404 with a path parameter, 408 and 413 with a body (one too slow or too
    large), plus its own."""
    statuses = {500, *op.errors}
    if op.request is not None or op.query or op.path_params:
        statuses.add(400)
    if op.auth:
        statuses.add(401)
    if op.path_params:
        statuses.add(404)
    if op.request is not None:
        statuses.update((408, 413))
    return sorted(statuses)


def _responses(op: Operation, components: dict[str, JsonSchema]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "No content" if not op.response else "Success"}
    if op.response:
        ok["content"] = {media: {"schema": _refs(schema, components)} for media, schema in op.response.items()}
    error = {JSON: {"schema": _refs(ERROR_RESPONSE, components)}}
    responses: dict[str, Any] = {str(op.status): ok}
    for status in _error_statuses(op):
        responses[str(status)] = {"description": _ERROR_DESCRIPTIONS[status], "content": error}
    return responses
