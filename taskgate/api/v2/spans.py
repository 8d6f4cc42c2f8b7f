"""v2 spans as opperai 1.7.2 uses them, served under `/v2` and at the root (1.7.2 appends the
operation path to whatever `server_url` it was given). A client-created span can be the parent of
later `/v2/call`s, which then land in its trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from taskgate.api.span_bodies import create_span, delete_span, find_span, update_span, v2_span
from taskgate.server.request_io import JSONResponse, guarded, read_json_object

if TYPE_CHECKING:
    from taskgate.context import AppContext


def routes(ctx: AppContext) -> list[BaseRoute]:
    spans = ctx.engine.spans

    @guarded
    async def create(request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        body = await read_json_object(request, ctx.settings.max_body_bytes)
        return JSONResponse(v2_span(await create_span(spans, project_id, body)))

    @guarded
    async def one(request: Request) -> Response:
        project_id = await ctx.auth.project_for(request)
        span_id = request.path_params["span_id"]
        if request.method == "DELETE":
            await delete_span(spans, project_id, span_id)
            return Response(status_code=204)
        if request.method == "PATCH":
            body = await read_json_object(request, ctx.settings.max_body_bytes)
            return JSONResponse(v2_span(await update_span(spans, project_id, span_id, body)))
        return JSONResponse(v2_span(await find_span(spans, project_id, span_id)))

    table: list[BaseRoute] = []
    for prefix in ("/v2", ""):
        table.append(Route(f"{prefix}/spans", create, methods=["POST"]))
        table.append(Route(f"{prefix}/spans/{{span_id}}", one, methods=["GET", "PATCH", "DELETE"]))
    return table
