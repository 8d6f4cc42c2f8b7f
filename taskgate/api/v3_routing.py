"""The v3 operation table: one list that both routes requests and becomes the OpenAPI document.

Keeping the table next to the handlers means `/v3/openapi.json` can only describe what the server
really serves. Function-scoped operations (`/v3/functions/{name}/...`) cannot be plain Starlette
routes, because a function name may contain `/` (2.1.1 sends it as `%2F`, which the ASGI server
has already decoded), so they are matched here, most specific suffix first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from taskgate.api.http import Handler, guarded
from taskgate.errors import MethodNotAllowedError, NotFoundError

if TYPE_CHECKING:
    from taskgate.context import AppContext

FUNCTION_PREFIX = "/v3/functions/"
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(slots=True)
class V3Request:
    """What a v3 handler gets: the app, the request, its path parameters and the caller's project."""

    ctx: AppContext
    request: Request
    params: dict[str, str]
    project_id: str  # empty for operations that need no key


V3Handler = Callable[[V3Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # OpenAPI template; `{name}` in a function path may contain slashes
    summary: str
    handler: V3Handler
    auth: bool = True
    status: int = 200
    query: tuple[str, ...] = ()
    body: str | None = None  # a word on the request body, for the document
    produces: str = "application/json"
    tags: tuple[str, ...] = field(default=())

    @property
    def function_scoped(self) -> bool:
        return self.path.startswith(FUNCTION_PREFIX + "{name}")


async def _run(ctx: AppContext, op: Operation, request: Request, params: dict[str, str]) -> Response:
    project_id = await ctx.auth.project_for(request) if op.auth else ""
    return await op.handler(V3Request(ctx, request, params, project_id))


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
    """An OpenAPI 3.1 document of exactly the operations in the table."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.handler.__name__.strip("_"),
            "security": [{"bearerAuth": []}] if op.auth else [],
            "responses": _responses(op),
        }
        if op.tags:
            entry["tags"] = list(op.tags)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(op.path)
        ] + [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in op.query]
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "description": op.body,
                "content": {"application/json": {"schema": {}}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Taskgate Task API", "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"ErrorResponse": _ERROR_SCHEMA},
        },
    }


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "message": {"type": "string"},
        "detail": {},
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
            "required": ["code", "message"],
        },
    },
}


def _responses(op: Operation) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    ok: dict[str, Any] = {"description": "No content" if op.status == 204 else "Success"}
    if op.status != 204:
        ok["content"] = {op.produces: {"schema": {}}}
    responses: dict[str, Any] = {str(op.status): ok, "400": {"description": "Bad request", **error}}
    if op.auth:
        responses["401"] = {"description": "Missing or invalid API key", **error}
    if "{" in op.path:
        responses["404"] = {"description": "Not found", **error}
    return responses
