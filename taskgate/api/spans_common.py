"""Client-created spans, shared by the v2 and v3 span endpoints.

Spans go through the recorder like every call's span, so one that was just created is found
(pending) before it reaches the database, and a call naming it as its parent lands in its trace.
The shared SpanRecord has no `metadata` (v3) or `score` (v2) field, so those two are kept in its
free-form `meta` under reserved keys and lifted back out when a span is shown.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskgate.api.fields import optional
from taskgate.errors import BadRequestError, ConflictError, NotFoundError
from taskgate.ids import new_id
from taskgate.store.base import SpanRecord

if TYPE_CHECKING:
    from taskgate.context import AppContext

METADATA_KEY = "_metadata"
SCORE_KEY = "_score"
DEFAULT_SPAN_TYPE = "span"
MAX_ID_CHARS = 255


def parse_time(value: Any, field: str) -> datetime | None:
    """An ISO 8601 time; one without an offset is taken as UTC, as both SDKs mean it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"'{field}' must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequestError(f"'{field}' is not an ISO 8601 date-time: '{value}'") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _string(body: dict[str, Any], key: str) -> str | None:
    return optional(body, key, str, "a string")


def _identifier(body: dict[str, Any], key: str) -> str | None:
    """A client-chosen id: stored as a key and put in URLs, so printable and of a sane length."""
    value = _string(body, key)
    if value is not None and not (0 < len(value) <= MAX_ID_CHARS and value.isprintable()):
        raise BadRequestError(f"'{key}' must be 1 to {MAX_ID_CHARS} printable characters")
    return value


def _object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    return optional(body, key, dict, "an object")


def _score(body: dict[str, Any]) -> float | None:
    value = body.get("score")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise BadRequestError("'score' must be a number")
    return value


def _meta(body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    meta = dict(base)
    if (given := _object(body, "meta")) is not None:
        meta = {key: value for key, value in meta.items() if key in (METADATA_KEY, SCORE_KEY)} | given
    if (metadata := _object(body, "metadata")) is not None:
        meta[METADATA_KEY] = metadata
    if (score := _score(body)) is not None:
        meta[SCORE_KEY] = score
    return meta


async def find_span(ctx: AppContext, project_id: str, span_id: str) -> SpanRecord:
    span = await ctx.recorder.find_span(project_id, span_id)
    if span is None:
        raise NotFoundError(f"span '{span_id}' was not found")
    return span


async def create_span(ctx: AppContext, project_id: str, body: dict[str, Any]) -> SpanRecord:
    """A new span: with a parent it joins the parent's trace, otherwise it starts (or joins) `trace_id`."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequestError("'name' is required and must be a non-empty string")
    given_id = _identifier(body, "id")
    span_id = given_id or new_id()
    if given_id is not None and await ctx.recorder.find_span(project_id, span_id, wait_for_peers=False) is not None:
        raise ConflictError(f"span '{span_id}' already exists")
    parent_id = _string(body, "parent_id")
    trace_id = _identifier(body, "trace_id")
    if parent_id is not None:
        trace_id = (await find_span(ctx, project_id, parent_id)).trace_id
    error = _string(body, "error")
    span = SpanRecord(
        id=span_id,
        trace_id=trace_id or new_id(),
        project_id=project_id,
        name=name,
        type=_string(body, "type") or DEFAULT_SPAN_TYPE,
        parent_id=parent_id,
        start_time=parse_time(body.get("start_time"), "start_time") or datetime.now(UTC),
        end_time=parse_time(body.get("end_time"), "end_time"),
        input=body.get("input"),
        output=body.get("output"),
        error=error,
        status="error" if error else "ok",
        tags=_object(body, "tags") or {},
        meta=_meta(body, {}),
    )
    await ctx.recorder.write_through(span)
    return span


async def update_span(ctx: AppContext, project_id: str, span_id: str, body: dict[str, Any]) -> SpanRecord:
    """Apply the fields present in a PATCH body; absent fields keep their value."""
    span = await find_span(ctx, project_id, span_id)
    changes: dict[str, Any] = {"meta": _meta(body, span.meta)}
    for key in ("name", "type"):
        if (value := _string(body, key)) is not None:
            changes[key] = value
    for key in ("input", "output"):
        if key in body:
            changes[key] = body[key]
    for key in ("start_time", "end_time"):
        if (moment := parse_time(body.get(key), key)) is not None:
            changes[key] = moment
    if (tags := _object(body, "tags")) is not None:
        changes["tags"] = tags
    if (error := _string(body, "error")) is not None:
        changes["error"] = error
        changes["status"] = "error"
    updated = replace(span, **changes)
    await ctx.recorder.write_through(updated)
    return updated


async def delete_span(ctx: AppContext, project_id: str, span_id: str) -> None:
    await ctx.recorder.flush()  # a span still pending would otherwise be written after the delete
    if not await ctx.store.delete_span(project_id, span_id):
        raise NotFoundError(f"span '{span_id}' was not found")


def duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000)


def user_meta(span: SpanRecord) -> dict[str, Any]:
    return {key: value for key, value in span.meta.items() if key not in (METADATA_KEY, SCORE_KEY)}


def v3_span(span: SpanRecord) -> dict[str, Any]:
    return {
        "id": span.id,
        "trace_id": span.trace_id,
        "name": span.name,
        "parent_id": span.parent_id,
        "type": span.type,
        "input": span.input,
        "output": span.output,
        "error": span.error,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "duration_ms": duration_ms(span.start_time, span.end_time),
        "status": span.status,
        "meta": user_meta(span),
        "metadata": span.meta.get(METADATA_KEY) or {},
        "tags": span.tags,
        "model": span.model_used,
        "model_chain": span.model_chain,
        "models_failed": span.models_failed,
        "attempts": span.attempts,
        "usage": span.usage or None,
        "cost": span.cost,
    }


def v2_span(span: SpanRecord) -> dict[str, Any]:
    return {
        "id": span.id,
        "name": span.name,
        "trace_id": span.trace_id,
        "parent_id": span.parent_id,
        "type": span.type,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "input": span.input,
        "output": span.output,
        "error": span.error,
        "meta": user_meta(span),
        "score": span.meta.get(SCORE_KEY),
    }
