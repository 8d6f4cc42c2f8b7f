"""Client-created spans, shared by the v2 and v3 span endpoints: their bodies read and shown.

Storing and finding them is the engine's span service (`taskgate.engine.spans`), so one that was
just created is found before it reaches the database, and a call naming it as its parent lands in
its trace. The shared SpanRecord has no `metadata` (v3) or `score` (v2) field, so those two are
kept in its free-form `meta` under reserved keys and lifted back out when a span is shown; a call's
function revision (`REVISION_KEY`) is kept there too, and never shown or set through the span API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from taskgate.api.request_fields import identifier, optional
from taskgate.engine.spans import REVISION_KEY, SpanService
from taskgate.errors import BadRequestError, ConflictError, NotFoundError, TaskgateError
from taskgate.ids import new_id
from taskgate.store.base import SpanRecord, TraceSummary

METADATA_KEY = "_metadata"
SCORE_KEY = "_score"
DEFAULT_SPAN_TYPE = "span"
MAX_ID_CHARS = 255
MAX_SPAN_NAME_CHARS = 1024  # a label, often a function's name (at most 256), sometimes a sentence


def parse_time(value: Any, field: str) -> datetime | None:
    """An ISO 8601 time, in UTC; one without an offset is taken as UTC, as both SDKs mean it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"'{field}' must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequestError(f"'{field}' is not an ISO 8601 date-time: '{value[:100]}'") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:00-05:00 is in year 10000 in UTC
        raise BadRequestError(f"'{field}' is outside the years 1 to 9999 in UTC: '{value}'") from exc


def span_id(value: str, what: str, *, error: type[TaskgateError] = BadRequestError) -> str:
    """A span or trace id from a client (a body field, a path, a header): an identifier (see
    `fields.identifier`) without `/`, since it is read back as one segment of a path
    (`/v3/spans/{id}`), where a `/`, even sent as `%2F`, would split it. `what` names it in the error."""
    if "/" in value:
        raise error(f"{what} must not contain '/'")
    return identifier(value, what, MAX_ID_CHARS, error=error)


def optional_span_id(body: Mapping[str, Any], key: str, *, error: type[TaskgateError] = BadRequestError) -> str | None:
    """`body[key]` as a span id, or None when it is absent or null."""
    value = optional(body, key, str, "a string", error=error)
    return span_id(value, f"'{key}'", error=error) if value is not None else None


def _name(value: Any) -> str:
    """A span's name: a label shown in traces and searched by `/v3/traces?name=`, so not blank and
    bounded (a megabyte name would be copied into every trace listing)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError("'name' must be a non-empty string")
    if len(value) > MAX_SPAN_NAME_CHARS:
        raise BadRequestError(f"'name' must be at most {MAX_SPAN_NAME_CHARS} characters")
    return value


def _string(body: dict[str, Any], key: str) -> str | None:
    return optional(body, key, str, "a string")


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
        # the call's revision is the server's record: a client can neither set nor drop it
        kept = {key: value for key, value in meta.items() if key in (METADATA_KEY, SCORE_KEY)}
        meta = kept | {key: value for key, value in given.items() if key != REVISION_KEY}
        if REVISION_KEY in base:
            meta[REVISION_KEY] = base[REVISION_KEY]
    if (metadata := _object(body, "metadata")) is not None:
        meta[METADATA_KEY] = metadata
    if (score := _score(body)) is not None:
        meta[SCORE_KEY] = score
    return meta


async def find_span(spans: SpanService, project_id: str, wanted: str) -> SpanRecord:
    span = await spans.find(project_id, span_id(wanted, "a span id"))
    if span is None:
        raise NotFoundError(f"span '{wanted}' was not found")
    return span


def _check_times(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end < start:
        raise BadRequestError(f"'end_time' ({end.isoformat()}) is before 'start_time' ({start.isoformat()})")


async def create_span(spans: SpanService, project_id: str, body: dict[str, Any]) -> SpanRecord:
    """A new span: with a parent it joins the parent's trace, otherwise it starts (or joins) `trace_id`."""
    if "name" not in body:
        raise BadRequestError("'name' is required")
    name = _name(body["name"])
    given_id = optional_span_id(body, "id")
    new_span_id = given_id or new_id()
    if given_id is not None and await spans.find(project_id, given_id, wait_for_peers=False) is not None:
        raise ConflictError(f"span '{given_id}' already exists")
    parent_id = optional_span_id(body, "parent_id")
    trace_id = await spans.trace_for(project_id, parent_id, optional_span_id(body, "trace_id"), parent_noun="span")
    error = _string(body, "error")
    span = SpanRecord(
        id=new_span_id,
        trace_id=trace_id,
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
    _check_times(span.start_time, span.end_time)
    await spans.write(span)
    return span


async def update_span(spans: SpanService, project_id: str, wanted: str, body: dict[str, Any]) -> SpanRecord:
    """Apply the fields present in a PATCH body; absent fields keep their value."""
    span = await find_span(spans, project_id, wanted)
    changes: dict[str, Any] = {"meta": _meta(body, span.meta)}
    if body.get("name") is not None:
        changes["name"] = _name(body["name"])
    if (kind := _string(body, "type")) is not None:
        changes["type"] = kind
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
    if "start_time" in changes or "end_time" in changes:  # against the stored other bound too
        _check_times(updated.start_time, updated.end_time)
    await spans.write(updated)
    return updated


async def delete_span(spans: SpanService, project_id: str, wanted: str) -> None:
    span_id(wanted, "a span id")
    if not await spans.delete(project_id, wanted):
        raise NotFoundError(f"span '{wanted}' was not found")


def duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000)


def user_meta(span: SpanRecord) -> dict[str, Any]:
    return {key: value for key, value in span.meta.items() if key not in (METADATA_KEY, SCORE_KEY, REVISION_KEY)}


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


def trace_head(trace_id: str, spans: list[SpanRecord]) -> dict[str, Any]:
    """A trace's own fields from its spans (at least one): named after its root span, whose input
    and output it shows, spanning the earliest start to the latest end, failed if any span failed."""
    ids = {span.id for span in spans}
    root = next((span for span in spans if span.parent_id is None or span.parent_id not in ids), spans[0])
    starts = [span.start_time for span in spans if span.start_time is not None]
    ends = [span.end_time for span in spans if span.end_time is not None]
    start, end = (min(starts) if starts else None), (max(ends) if ends else None)
    return {
        "id": trace_id,
        "name": root.name,
        "start_time": start,
        "end_time": end,
        "duration_ms": duration_ms(start, end),
        "status": "error" if any(span.status == "error" for span in spans) else "ok",
        "input": root.input,
        "output": root.output,
    }


def trace_item(summary: TraceSummary) -> dict[str, Any]:
    """A trace as a listing shows it (v3; v2 the same with text input and output)."""
    return {
        "id": summary.id,
        "name": summary.name,
        "span_count": summary.span_count,
        "start_time": summary.start_time,
        "end_time": summary.end_time,
        "duration_ms": duration_ms(summary.start_time, summary.end_time),
        "status": summary.status,
        "input": summary.input,
        "output": summary.output,
        "total_tokens": summary.total_tokens,
    }
