"""v2 span feedback and saving a span as an example of its function (`opper.spans.submit_feedback`,
`opper.spans.save_examples`). The rules (what is saved, when feedback saves) are the engine's
feedback service's; here the bodies are read and shaped.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import optional
from taskgate.api.span_bodies import span_id
from taskgate.api.v2.wire_text import wire_text
from taskgate.errors import RequestValidationError
from taskgate.server.request_io import JSONResponse, read_json_object

if TYPE_CHECKING:
    from taskgate.context import AppContext

MAX_COMMENT_CHARS = 10_000


def comment_field(body: dict[str, Any]) -> str | None:
    """An optional comment: a string of at most MAX_COMMENT_CHARS, or null."""
    comment = optional(body, "comment", str, "a string or null", error=RequestValidationError)
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise RequestValidationError(f"'comment' must be at most {MAX_COMMENT_CHARS} characters")
    return comment


def number_field(body: dict[str, Any], key: str) -> float | None:
    """An optional finite number (JSON has no NaN or infinity, but a huge integer is no float)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise RequestValidationError(f"'{key}' must be a number")
    return float(value)


def path_span_id(request: Request) -> str:
    return span_id(request.path_params["span_id"], "a span id")


async def save_examples(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    saved = await ctx.engine.feedback.save_example(project_id, path_span_id(request))
    example = saved.example
    return JSONResponse({
        "dataset_id": saved.dataset_id,
        "dataset_entry_id": example.id,
        "input": wire_text(example.input),
        "output": wire_text(example.output),
        "expected": None,
        "comment": example.comment,
    }, status_code=201)


async def submit(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    if "score" not in body:
        raise RequestValidationError("'score' is required")
    score = number_field(body, "score")
    if score is None or not 0 <= score <= 1:
        raise RequestValidationError("'score' must be a number from 0 to 1")
    comment = comment_field(body)
    save = optional(body, "save_to_dataset", bool, "a boolean or null", error=RequestValidationError)
    given = await ctx.engine.feedback.give_feedback(project_id, path_span_id(request), score, comment, save)
    return JSONResponse({"span_id": given.event.span_id, "score": score, "example_saved": given.example_saved,
                         "comment": comment})
