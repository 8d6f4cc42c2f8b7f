"""v2 span metrics (`opper.span_metrics.*`): named scores on a span, such as an evaluator's.

They are kept as the span's evaluation events (engine `FeedbackService`), so v3 readers of the
span's events see them as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import identifier, optional
from taskgate.api.v2.feedback import comment_field, number_field, path_span_id
from taskgate.api.v2.paging import page_of, paged
from taskgate.errors import RequestValidationError
from taskgate.server.request_io import JSONResponse, read_json_object
from taskgate.store.base import SpanEvent

if TYPE_CHECKING:
    from taskgate.context import AppContext

MAX_DIMENSION_CHARS = 256
MAX_ID_CHARS = 255


def metric_body(event: SpanEvent) -> dict[str, Any]:
    """A metric as 1.7.2 reads it (`SpanMetricData` in a trace is the same without `span_id`)."""
    return {"id": event.id, "span_id": event.span_id, "dimension": event.data["dimension"],
            "value": event.data["value"], "comment": event.data.get("comment"), "created_at": event.created_at}


def _dimension(body: dict[str, Any]) -> str | None:
    value = optional(body, "dimension", str, "a string", error=RequestValidationError)
    return None if value is None else identifier(value, "'dimension'", MAX_DIMENSION_CHARS,
                                                 error=RequestValidationError)


def _metric_id(request: Request) -> str:
    return identifier(request.path_params["metric_id"], "a metric id", MAX_ID_CHARS)


async def create(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    dimension, value = _dimension(body), number_field(body, "value")
    if dimension is None or value is None:
        raise RequestValidationError("'dimension' and 'value' are required")
    metric = await ctx.engine.feedback.add_metric(project_id, path_span_id(request), dimension, value,
                                                  comment_field(body))
    return JSONResponse(metric_body(metric))


async def list_metrics(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    page = page_of(request)
    metrics, total = await ctx.engine.feedback.metrics(project_id, path_span_id(request), page.limit, page.offset)
    return JSONResponse(paged([metric_body(metric) for metric in metrics], total))


async def get(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    metric = await ctx.engine.feedback.metric(project_id, path_span_id(request), _metric_id(request))
    return JSONResponse(metric_body(metric))


async def update(ctx: AppContext, request: Request) -> Response:
    """Fields absent or null keep their value, except `comment`, which null clears."""
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    changes: dict[str, Any] = {}
    if (dimension := _dimension(body)) is not None:
        changes["dimension"] = dimension
    if (value := number_field(body, "value")) is not None:
        changes["value"] = value
    if "comment" in body:
        changes["comment"] = comment_field(body)
    metric = await ctx.engine.feedback.update_metric(project_id, path_span_id(request), _metric_id(request),
                                                     changes)
    return JSONResponse(metric_body(metric))


async def delete(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    await ctx.engine.feedback.delete_metric(project_id, path_span_id(request), _metric_id(request))
    return Response(status_code=204)
