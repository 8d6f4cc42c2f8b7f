"""v3 calls and streams: `/v3/call[/stream]` (name in the body) and `/v3/functions/{name}/call|stream`.

Errors found before any output (bad body, unknown parent span, every model failed) are plain
HTTP errors, because the engine raises them from the first event. Once the stream has started,
a failure becomes a `{"type": "error"}` chunk followed by `[DONE]` (spec §3.4, §9.2).
"""

from __future__ import annotations

from starlette.responses import Response

from taskgate.api.usage_bodies import v3_usage
from taskgate.api.v3.preferences import apply_preferences
from taskgate.api.v3.routing import EVENT_STREAM, JSON, Operation, V3Request
from taskgate.api.v3.run_shapes import (
    CALL_REQUEST,
    FUNCTION_NAME,
    RUN_REQUEST,
    RUN_RESPONSE,
    STREAM_EVENT,
    function_name,
    run_response,
    task_from_run_request,
)
from taskgate.engine.task import Event, Failed, Finished, Task, TextDelta, ToolCallDelta
from taskgate.errors import TaskgateError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.request_io import JSONResponse
from taskgate.server.sse import DONE, LAST_EVENTS, data_frame, event_frames, named_frame, sse_response


async def _prepare(req: V3Request, name: str | None) -> tuple[Task, bool]:
    """Parse the body into a task; also say whether to stream."""
    body = req.body
    name = function_name(body.get("name") if name is None else name)
    stored = await req.ctx.engine.functions.current(req.project_id, name)
    task = task_from_run_request(body, req.project_id, name, stored)
    apply_preferences(task, body, req.ctx.settings.route_models)
    return task, body.get("stream") is True


async def _run(req: V3Request, task: Task) -> Response:
    result = await until_client_leaves(req.request, req.ctx.engine.run(task))
    return JSONResponse(run_response(result, task))


async def _stream(req: V3Request, task: Task) -> Response:
    events = req.ctx.engine.stream(task)
    # Errors before any output are raised here, as plain HTTP errors; `Started` makes no chunk in v3.
    await until_client_leaves(req.request, anext(events))
    return sse_response(event_frames(events, _V3Frames(task)), req.ctx.settings.heartbeat_s)


def _chunks(event: Event, task: Task) -> list[bytes]:
    if isinstance(event, TextDelta):
        return [data_frame({"type": "content", "delta": event.text})] if event.text else []
    if isinstance(event, ToolCallDelta):
        frames = []
        if event.id is not None or event.name is not None:
            frames.append(data_frame({"type": "tool_call_start", "tool_call_index": event.index,
                                      "tool_call_id": event.id or "", "tool_call_name": event.name or ""}))
        if event.arguments:
            frames.append(data_frame({"type": "tool_call_delta", "tool_call_index": event.index,
                                      "tool_call_args": event.arguments}))
        return frames
    if isinstance(event, Finished):
        return [
            data_frame({"type": "done", "usage": v3_usage(event.result.usage)}),
            named_frame("complete", run_response(event.result, task)),
        ]
    if isinstance(event, Failed):
        return [data_frame({"type": "error", "error": _error_text(event.error)})]
    return []  # Started: v3 has no chunk for it


def _error_text(error: Exception) -> str:
    """The error's own message; an unexpected one's stays in the log."""
    return error.detail if isinstance(error, TaskgateError) else "internal error; see the server log"


class _V3Frames:
    """The v3 stream: `_chunks`, with `[DONE]` after the last event."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def frames(self, event: Event) -> list[bytes]:
        frames = _chunks(event, self._task)
        return [*frames, DONE] if isinstance(event, LAST_EVENTS) else frames

    def ended(self) -> list[bytes]:
        return [DONE]


async def call_by_body(req: V3Request) -> Response:
    task, stream = await _prepare(req, None)
    return await (_stream if stream else _run)(req, task)


async def stream_by_body(req: V3Request) -> Response:
    task, _ = await _prepare(req, None)
    return await _stream(req, task)


async def call_function(req: V3Request) -> Response:
    task, stream = await _prepare(req, req.params["name"])
    return await (_stream if stream else _run)(req, task)


async def stream_function(req: V3Request) -> Response:
    task, _ = await _prepare(req, req.params["name"])
    return await _stream(req, task)


# Errors a call can meet beyond a bad request: an unknown parent span (404), and every model failing
# upstream (429 rate limited, 502 failed, 503 local queue full, 504 timed out).
_CALL_ERRORS = (404, 429, 502, 503, 504)
_ANSWER = {JSON: RUN_RESPONSE, EVENT_STREAM: STREAM_EVENT}  # the event stream when the body says stream: true
_STREAM = {EVENT_STREAM: STREAM_EVENT}
_TAGS = ("calls",)
OPERATIONS = [
    Operation("POST", "/v3/call", "Call a function named in the body", call_by_body, _ANSWER,
              request=CALL_REQUEST, errors=_CALL_ERRORS, tags=_TAGS),
    Operation("POST", "/v3/call/stream", "Stream a function named in the body", stream_by_body, _STREAM,
              request=CALL_REQUEST, errors=_CALL_ERRORS, tags=_TAGS),
    Operation("POST", "/v3/functions/{name}/call", "Call a function", call_function, _ANSWER,
              path_params=(FUNCTION_NAME,), request=RUN_REQUEST, errors=_CALL_ERRORS, tags=_TAGS),
    Operation("POST", "/v3/functions/{name}/stream", "Stream a function", stream_function, _STREAM,
              path_params=(FUNCTION_NAME,), request=RUN_REQUEST, errors=_CALL_ERRORS, tags=_TAGS),
]
