"""`GET /models`: the language models this server can route to, from the engine's catalogue (the
list `GET /v3/models` serves too), in 1.7.2's ListLanguageModelsResponse shape; `?capability=`
narrows them as it does on v3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.v2.paging import page_of, paged
from taskgate.engine.catalogue import LOCAL_PROVIDER, capability_filter
from taskgate.server.request_io import JSONResponse

if TYPE_CHECKING:
    from taskgate.context import AppContext

PER_TOKEN = 1_000_000  # the catalogue prices per million tokens; v2 per token


def _per_token(prices: list[float]) -> float | None:
    return prices[0] / PER_TOKEN if prices else None


def v2_model(model: dict[str, Any]) -> dict[str, Any]:
    """`location` says where the model runs: on this machine, or at its provider."""
    return {
        "hosting_provider": model["provider"],
        "name": model["id"],
        "location": "local" if model["provider"] == LOCAL_PROVIDER else "remote",
        "input_cost_per_token": _per_token(model["pricing"]["input"]),
        "output_cost_per_token": _per_token(model["pricing"]["output"]),
    }


async def list_models(ctx: AppContext, request: Request) -> Response:
    await ctx.auth.project_for(request)
    page = page_of(request)
    capability = capability_filter(request.query_params.get("capability"))
    models = [model for model in await ctx.engine.catalogue.models()
              if model["type"] == "llm" and (capability is None or capability in model["capabilities"])]
    return JSONResponse(paged([v2_model(m) for m in models[page.offset:page.offset + page.limit]], len(models)))
