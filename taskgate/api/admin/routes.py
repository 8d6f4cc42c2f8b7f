"""`/v2/admin`: a project's API keys (list, create, change limits, revoke, usage) and its own limits.

Who may call it: an admin key, for its own project only; another project's key id is a 404, as if
it did not exist. Admin keys are the bootstrap keys (TASKGATE_API_KEYS, project `default`) and keys
made with `admin: true` (by an admin, or `taskgate keys create --admin`). An admin key carries no
limits of its own (`engine.quotas.keys`), so a limited key is never an admin and cannot lift its
limits. A project's own limits are the operator's to set: only a bootstrap key may change them
here (for `default`), or the CLI for any project; an admin of the project may read them, since
they bound what its keys can do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from taskgate.engine.quotas.caller import Caller
from taskgate.engine.quotas.keys import key_body, limits_body
from taskgate.errors import BadRequestError, ForbiddenError, NotFoundError
from taskgate.server.dispatch import Endpoint, endpoint_routes
from taskgate.server.request_io import JSONResponse, read_json_object

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from taskgate.context import AppContext

MAX_KEY_ID_CHARS = 64


async def _admin(ctx: AppContext, request: Request) -> Caller:
    caller = await ctx.auth.caller_for(request)
    if not caller.admin:
        raise ForbiddenError("the admin API needs an admin key: a bootstrap key (TASKGATE_API_KEYS) or one "
                             "made with admin: true")
    return caller


def _key_id(request: Request) -> str:
    """A key id from the path; one no key can have is a 404, like any unknown id."""
    value: str = request.path_params["key_id"]
    if len(value) > MAX_KEY_ID_CHARS or not value.isprintable():
        raise NotFoundError(f"the project has no API key {value[:40]!r}")
    return value


async def list_keys(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    raw = request.query_params.get("include_revoked", "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadRequestError(f"query parameter 'include_revoked' must be true or false, got '{raw[:40]}'")
    include_revoked = raw in ("true", "1")
    records = await ctx.keys.list(caller.project_id, include_revoked)
    return JSONResponse({"data": [key_body(record) for record in records]})


async def create_key(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    record, secret = await ctx.keys.create(caller.project_id, body)
    return JSONResponse({**key_body(record), "key": secret}, status_code=201)


async def get_key(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    return JSONResponse(key_body(await ctx.keys.get(caller.project_id, _key_id(request))))


async def update_key(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    key_id = _key_id(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    return JSONResponse(key_body(await ctx.keys.update(caller.project_id, key_id, body)))


async def revoke_key(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    return JSONResponse(key_body(await ctx.keys.revoke(caller.project_id, _key_id(request))))


async def key_usage(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    key_id = _key_id(request)
    return JSONResponse({"key_id": key_id, **await ctx.keys.key_usage(caller.project_id, key_id)})


async def get_project(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    limits = await ctx.keys.project_limits(caller.project_id)
    return JSONResponse({"project_id": caller.project_id, "limits": limits_body(limits),
                         "usage": await ctx.keys.project_usage(caller.project_id)})


async def update_project(ctx: AppContext, request: Request) -> Response:
    caller = await _admin(ctx, request)
    if not caller.operator:
        raise ForbiddenError("a project's limits are the operator's: change them with a bootstrap key "
                             "(TASKGATE_API_KEYS) or `taskgate projects limits`")
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    limits = await ctx.keys.set_project_limits(caller.project_id, body)
    return JSONResponse({"project_id": caller.project_id, "limits": limits_body(limits)})


ROUTES: list[Endpoint[AppContext]] = [
    Endpoint("GET", "/v2/admin/keys", list_keys),
    Endpoint("POST", "/v2/admin/keys", create_key),
    Endpoint("GET", "/v2/admin/keys/{key_id}", get_key),
    Endpoint("PATCH", "/v2/admin/keys/{key_id}", update_key),
    Endpoint("DELETE", "/v2/admin/keys/{key_id}", revoke_key),
    Endpoint("GET", "/v2/admin/keys/{key_id}/usage", key_usage),
    Endpoint("GET", "/v2/admin/project", get_project),
    Endpoint("PATCH", "/v2/admin/project", update_project),
]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return endpoint_routes(ctx, ROUTES)
