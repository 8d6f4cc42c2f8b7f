"""`GET /v2/analytics/usage` (opperai 1.7.2 `analytics.get_usage`): cost and tokens over time.

The query is read here, its rules are the engine's (`taskgate.engine.analytics`) and the sums are
the database's. Each item is `{time_bucket, cost, total_tokens}`, plus the requested `fields`
(input_tokens, output_tokens, reasoning_tokens, cache_read_tokens, cache_write_tokens, calls) and one
key per `group_by` key; only buckets with usage appear.
`cost` is text, as 1.7.2 types it (`GetUsageResultItem.cost: str`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.span_bodies import parse_time
from taskgate.engine.analytics import usage_query
from taskgate.server.request_io import JSONResponse
from taskgate.store.base import UsageRow

if TYPE_CHECKING:
    from taskgate.context import AppContext

COST_DECIMALS = 12  # well below a micro-dollar, and no float noise such as 0.30000000000000004


def _time_param(request: Request, name: str) -> Any:
    """A datetime query value; a `+` offset sent unencoded arrives as a space, and is read back."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    return parse_time(raw.replace(" ", "+") if "T" in raw else raw, name)


def cost_text(cost: float) -> str:
    text = f"{cost:.{COST_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def usage_item(row: UsageRow) -> dict[str, Any]:
    return {"time_bucket": row.time_bucket.isoformat(), "cost": cost_text(row.cost), **row.counters, **row.groups}


async def usage(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    query = usage_query(
        _time_param(request, "from_date"), _time_param(request, "to_date"),
        request.query_params.get("granularity") or None,
        request.query_params.getlist("group_by"), request.query_params.getlist("fields"),
    )
    return JSONResponse([usage_item(row) for row in await ctx.engine.usage.report(project_id, query)])
