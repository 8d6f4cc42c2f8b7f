"""The Anthropic Messages dialect: `POST /v3/compat/v1/messages` over the shared engine.

An `anthropic` client pointed at `base_url=<server>/v3/compat` works unchanged, whichever provider
answers: the request becomes the engine's chat Task (`messages_request`), and the result or its
events are shaped back as Anthropic's (`messages_body`). Errors, before or during a stream, use
Anthropic's `{"type": "error", "error": {...}}` envelope, which the client reads its message from.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from taskgate.api.anthropic.messages_body import MessageEvents, error_body, message_body
from taskgate.api.anthropic.messages_request import parse_messages_request
from taskgate.api.compat_http import event_stream, span_headers, started
from taskgate.context import AppContext
from taskgate.errors import TaskgateError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.dispatch import Endpoint, endpoint_routes
from taskgate.server.request_io import JSONResponse, header_map, read_json_object
from taskgate.server.sse import event_frames


async def messages(ctx: AppContext, request: Request) -> Response:
    try:
        return await _messages(ctx, request)
    except TaskgateError as exc:
        return JSONResponse(error_body(exc), status_code=exc.status, headers=exc.headers)


async def _messages(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    call = parse_messages_request(body, header_map(request), project_id)
    if not call.stream:
        result = await until_client_leaves(request, ctx.engine.run(call.task))
        return JSONResponse(message_body(result), headers=span_headers(result.span_id, result.cost, result.guards))

    first, events = await started(request, ctx.engine.stream(call.task))
    shapes = MessageEvents(first.span_id, call.model_label)
    return event_stream(ctx, event_frames(events, shapes, [shapes.start()]), first)


ROUTES = [
    Endpoint("POST", "/v3/compat/v1/messages", messages),
]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return endpoint_routes(ctx, ROUTES)
