"""What every compat surface (chat completions, Responses, Anthropic Messages) answers alike, around
its own body: the headers naming the span, its cost and what the guards found, and the start of a
stream, where errors before any output still go out as a plain HTTP error."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.context import AppContext
from taskgate.engine.task import Event, Started
from taskgate.errors import TaskgateError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.sse import sse_response

Events = AsyncGenerator[Event, None]


async def started(request: Request, events: Events) -> tuple[Started, Events]:
    """The stream's `Started`, awaited here so that errors before any output go out as a plain HTTP error."""
    first = await until_client_leaves(request, anext(events, None))
    if not isinstance(first, Started):
        await events.aclose()
        raise TaskgateError("the engine stream did not start with its span")
    return first, events


def event_stream(ctx: AppContext, frames: AsyncGenerator[bytes, None], first: Started) -> Response:
    """The SSE response, naming its span in a header as the plain answers do (no cost yet: it is not
    known). The headers go out before the answer: of the guards, they can tell only what the input's found."""
    response = sse_response(frames, ctx.settings.heartbeat_s)
    input_reports = [report for report in first.guards if report["direction"] == "input"]
    response.headers.update({"x-opper-span-id": first.span_id, **guard_headers(input_reports)})
    return response


def span_headers(span_id: str, cost: float | None, guards: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Where the answer was recorded, what it cost when a price is known, and what its guards found."""
    headers = {"x-opper-span-id": span_id, **guard_headers(guards or [])}
    if cost is not None:
        headers["x-opper-cost"] = repr(cost)
    return headers


def guard_headers(reports: list[dict[str, Any]]) -> dict[str, str]:
    """What the guards found, for a client that only sees headers: `X-Opper-Guard-Flagged: true`
    and `X-Opper-Guard-Findings: input/pii/email=2, ...` (counts; positions are in the span's
    guardrail events). A stream's last chunk carries every report under `guards`."""
    if not reports:
        return {}
    counts: dict[str, int] = {}
    for report in reports:
        for finding in report["findings"]:
            key = f"{report['direction']}/{report['type']}/{finding['kind']}"
            counts[key] = counts.get(key, 0) + 1
    headers = {"x-opper-guard-flagged": "true" if counts else "false"}
    if counts:
        headers["x-opper-guard-findings"] = ", ".join(f"{key}={count}" for key, count in counts.items())
    return headers
