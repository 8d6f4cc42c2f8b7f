"""v2 spans as opperai 1.7.2 uses them. A client-created span can be the parent of later
`/v2/call`s, which then land in its trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.span_bodies import create_span, delete_span, find_span, update_span, v2_span
from taskgate.server.request_io import JSONResponse, read_json_object

if TYPE_CHECKING:
    from taskgate.context import AppContext


async def create(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    return JSONResponse(v2_span(await create_span(ctx.engine.spans, project_id, body)))


async def get(ctx: AppContext, request: Request) -> Response:
    """The span with its feedback, when it has been given (`POST /v2/spans/{id}/feedback`)."""
    project_id = await ctx.auth.project_for(request)
    span = await find_span(ctx.engine.spans, project_id, request.path_params["span_id"])
    given = await ctx.engine.feedback.feedback_of(span)
    feedback = {"score": given.data["score"], "comment": given.data["comment"]} if given else None
    return JSONResponse({**v2_span(span), "feedback": feedback})


async def update(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    return JSONResponse(v2_span(await update_span(ctx.engine.spans, project_id, request.path_params["span_id"], body)))


async def delete(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    await delete_span(ctx.engine.spans, project_id, request.path_params["span_id"])
    return Response(status_code=204)
