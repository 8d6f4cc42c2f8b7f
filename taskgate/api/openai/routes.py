"""The OpenAI-compatible dialect: chat completions, Responses (and OpenResponses, the same body
the 2.1.1 Agent sends) and embeddings over the shared engine (spec §8).

Only parsing and shaping live here; validation, fallback, structured output, pricing and recording
are the engine's, so a compat chat behaves exactly like a `/call` with the caller's conversation.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from taskgate.api.compat_http import event_stream, span_headers, started
from taskgate.api.openai import embeddings as emb
from taskgate.api.openai.chat_request import ChatCall, parse_chat_request
from taskgate.api.openai.chat_stream import ChoiceChunks, ChunkStream, chunk_frames, completion_body
from taskgate.api.openai.responses_body import ResponseShape
from taskgate.api.openai.responses_request import parse_responses_request
from taskgate.api.openai.responses_stream import ResponseEvents
from taskgate.context import AppContext
from taskgate.engine.task import Result, Started
from taskgate.errors import TaskgateError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.dispatch import Endpoint, endpoint_routes
from taskgate.server.request_io import JSONResponse, header_map, read_json_object
from taskgate.server.sse import event_frames


async def chat_completions(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    call = parse_chat_request(body, header_map(request), project_id, ctx.settings.default_model)
    structured = call.task.output_schema is not None
    if not call.stream:
        if call.n == 1:
            results = [await until_client_leaves(request, ctx.engine.run(call.task))]
        else:
            results = await until_client_leaves(request, ctx.engine.run_choices(call.task, call.n))
        answer = completion_body(results, structured)
        headers = span_headers(results[0].span_id, answer["cost"], _reports(results))
        if call.n > 1:
            headers["x-opper-span-ids"] = ",".join(result.span_id for result in results)
        return JSONResponse(answer, headers=headers)

    if call.n > 1:
        return await _stream_choices(ctx, request, call)
    first, events = await started(request, ctx.engine.stream(call.task))
    chunks = ChunkStream(first.span_id, call.model_label, call.include_usage, guarded=call.task.guards is not None)
    return event_stream(ctx, chunk_frames(first, events, chunks), first)


async def responses(ctx: AppContext, request: Request) -> Response:
    """`/v3/compat/responses` and `/v3/compat/openresponses`: one body, one answer shape."""
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    call = parse_responses_request(body, header_map(request), project_id, ctx.settings.default_model)
    if not call.stream:
        result = await until_client_leaves(request, ctx.engine.run(call.task))
        shape = ResponseShape(result.span_id, call.echo, call.model_label)
        return JSONResponse(shape.answer(result, call.task.output_schema is not None),
                            headers=span_headers(result.span_id, result.cost, result.guards))

    first, events = await started(request, ctx.engine.stream(call.task))
    mapping = ResponseEvents(ResponseShape(first.span_id, call.echo, call.model_label),
                             structured=call.task.output_schema is not None)
    return event_stream(ctx, event_frames(events, mapping, mapping.head()), first)


def _reports(results: list[Result]) -> list[dict[str, Any]]:
    """The guards' reports of a completion: the input's once (every choice screened the same
    conversation), each choice's output."""
    return [*results[0].guards,
            *(report for result in results[1:] for report in result.guards if report["direction"] == "output")]


async def _stream_choices(ctx: AppContext, request: Request, call: ChatCall) -> Response:
    """A streamed completion of several choices; as for one, errors before every choice has
    started are a plain HTTP error."""
    events = ctx.engine.stream_choices(call.task, call.n)
    starts: list[Started] = []
    try:
        while len(starts) < call.n:
            start = (await until_client_leaves(request, anext(events))).event
            if not isinstance(start, Started):
                raise TaskgateError("a choice's engine stream did not start with its span")
            starts.append(start)
    except BaseException:
        await events.aclose()
        raise
    chunks = ChoiceChunks(starts, call.model_label, call.include_usage, guarded=call.task.guards is not None)
    response = event_stream(ctx, event_frames(events, chunks, chunks.head()), starts[0])
    response.headers["x-opper-span-ids"] = ",".join(start.span_id for start in starts)
    return response


async def embeddings(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    call = emb.parse_embedding_request(body)
    result = await emb.run_embedding(ctx, request, project_id, call)
    return JSONResponse(emb.embedding_body(call, result.response), headers=span_headers(result.span_id, result.cost))


ROUTES = [
    Endpoint("POST", "/v3/compat/chat/completions", chat_completions),
    Endpoint("POST", "/v2/openai/chat/completions", chat_completions),
    Endpoint("POST", "/openai/chat/completions", chat_completions),
    Endpoint("POST", "/v3/compat/embeddings", embeddings),
    Endpoint("POST", "/v3/compat/responses", responses),
    Endpoint("POST", "/v3/compat/openresponses", responses),
]


def routes(ctx: AppContext) -> list[BaseRoute]:
    return endpoint_routes(ctx, ROUTES)
