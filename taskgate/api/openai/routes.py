"""The OpenAI-compatible dialect: chat completions and embeddings over the shared engine (spec §8).

Only parsing and shaping live here; validation, fallback, structured output, pricing and recording
are the engine's, so a compat chat behaves exactly like a `/call` with the caller's conversation.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from taskgate.api.openai import embeddings as emb
from taskgate.api.openai.chat_request import parse_chat_request
from taskgate.api.openai.chat_stream import ChunkStream, chunk_frames, completion_body
from taskgate.context import AppContext
from taskgate.engine.task import Started
from taskgate.errors import TaskgateError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.dispatch import Endpoint, endpoint_routes
from taskgate.server.request_io import JSONResponse, header_map, read_json_object
from taskgate.server.sse import sse_response


async def chat_completions(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    call = parse_chat_request(body, header_map(request), project_id, ctx.settings.default_model)
    structured = call.task.output_schema is not None
    if not call.stream:
        result = await until_client_leaves(request, ctx.engine.run(call.task))
        return JSONResponse(completion_body(result, structured), headers=_span_headers(result.span_id, result.cost))

    events = ctx.engine.stream(call.task)
    # Errors before any output are raised here, so they go out as a plain HTTP error.
    first = await until_client_leaves(request, anext(events, None))
    if not isinstance(first, Started):
        await events.aclose()
        raise TaskgateError("the engine stream did not start with its span")
    frames = chunk_frames(first, events, ChunkStream(first.span_id, call.model_label, call.include_usage))
    response = sse_response(frames, ctx.settings.heartbeat_s)
    response.headers["x-opper-span-id"] = first.span_id
    return response


async def embeddings(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    call = emb.parse_embedding_request(body)
    result = await emb.run_embedding(ctx, request, project_id, call)
    return JSONResponse(emb.embedding_body(call, result.response), headers=_span_headers(result.span_id, result.cost))


def _span_headers(span_id: str, cost: float | None) -> dict[str, str]:
    """Where the answer was recorded, and what it cost when a price is known."""
    headers = {"x-opper-span-id": span_id}
    if cost is not None:
        headers["x-opper-cost"] = repr(cost)
    return headers


ROUTES = [
    Endpoint("POST", "/v3/compat/chat/completions", chat_completions),
    Endpoint("POST", "/v2/openai/chat/completions", chat_completions),
    Endpoint("POST", "/openai/chat/completions", chat_completions),
    Endpoint("POST", "/v3/compat/embeddings", embeddings),
]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return endpoint_routes(ctx, ROUTES)
