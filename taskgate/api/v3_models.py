"""`GET /v3/models`: the models this server can route to, with prices, in 2.1.1's ModelInfo shape.

A provider is listed when its key is configured; its models and prices come from the price table
Taskgate already uses for costs (`genai-prices`), so the catalogue and the billed cost agree.
Providers without a price table (ollama, vllm, custom ones) cannot be enumerated and are left out;
configured local models are listed at zero cost. The table is built once per configuration, off
the event loop, because loading it takes a few hundred milliseconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from starlette.responses import Response

from taskgate.api.http import JSONResponse, query_int
from taskgate.api.v3_routing import Operation, V3Request
from taskgate.config import Settings
from taskgate.errors import BadRequestError
from taskgate.providers.catalog import configured_providers

LOCAL_DISPLAY_NAME = "Local (llama.cpp)"
SORT_KEYS = ("id", "name", "provider", "cost", "context_window")


def _model_type(model_id: str, prices: Any) -> str | None:
    """Chat models have token prices both ways; embedding models only an input price."""
    if getattr(prices, "input_mtok", None) is None:
        return None
    if getattr(prices, "output_mtok", None) is not None:
        return "llm"
    return "embedding" if "embed" in model_id else None


def _current_prices(prices: Any, now: datetime) -> Any:
    """genai-prices keeps dated price changes; the last one in force is today's price."""
    if not isinstance(prices, list):
        return prices
    active = [entry for entry in prices if entry.constraint is None or entry.constraint.active(now)]
    return (active or prices)[-1].prices


def _tiers(value: Any) -> tuple[list[float], list[int]]:
    """A price per million tokens as the v3 spec's list, plus the token thresholds of any tiers."""
    if value is None:
        return [], []
    if isinstance(value, Decimal | int | float):
        return [float(value)], []
    return [float(value.base), *(float(tier.price) for tier in value.tiers)], [tier.start for tier in value.tiers]


def _pricing(prices: Any) -> dict[str, Any]:
    input_prices, thresholds = _tiers(prices.input_mtok)
    pricing: dict[str, Any] = {"input": input_prices, "output": _tiers(getattr(prices, "output_mtok", None))[0]}
    cached, _ = _tiers(getattr(prices, "cache_read_mtok", None))
    if cached:
        pricing["cached_input"] = cached
    creation, _ = _tiers(getattr(prices, "cache_write_mtok", None))
    if creation:
        pricing["cache_creation"] = creation
    if thresholds:
        pricing["thresholds"] = thresholds
    return pricing


def _entry(provider: str, display: str, model_id: str, name: str, kind: str, pricing: dict[str, Any],
           context_window: int, description: str, deprecated: bool) -> dict[str, Any]:
    base_in = pricing["input"][0] if pricing["input"] else 0.0
    base_out = pricing["output"][0] if pricing["output"] else 0.0
    return {
        "id": f"{provider}/{model_id}",
        "name": name,
        "type": kind,
        "provider": provider,
        "provider_display_name": display,
        "model_id": model_id,
        "description": description,
        "capabilities": [],
        "speed": "",
        "quality": "",
        "cost": base_in + base_out,  # USD per million input plus output tokens: one figure to sort by
        "context_window": context_window,
        "params": {},
        "pricing": pricing,
        "api_type": kind,
        "aliases": [],
        "deprecated": deprecated,
    }


@lru_cache(maxsize=8)
def _catalogue(providers: tuple[tuple[str, str], ...], local_models: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    """Every listed model for a configuration: (provider, genai-prices id) pairs plus local names."""
    from genai_prices.data import providers as price_table

    by_id = {entry.id: entry for entry in price_table}
    now = datetime.now(UTC)
    models = []
    for provider, price_id in providers:
        table = by_id.get(price_id)
        if table is None:
            continue
        for model in table.models:
            if ":" in model.id or model.id.endswith(("-", ".")):
                continue  # a match pattern for fine-tunes, not a model one can call
            prices = _current_prices(model.prices, now)
            kind = _model_type(model.id, prices)
            if kind is None:
                continue
            models.append(_entry(provider, table.name, model.id, model.name or model.id, kind, _pricing(prices),
                                 model.context_window or 0, model.description or "", bool(model.deprecated)))
    for name in local_models:
        models.append(_entry("local", LOCAL_DISPLAY_NAME, name, name, "llm", {"input": [0.0], "output": [0.0]},
                             0, "A local GGUF model served in-process by llama.cpp", False))
    return tuple(models)


def _configuration(settings: Settings) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    providers = []
    for name in configured_providers(settings.presets, settings.env):
        price_id = settings.presets[name].price_provider
        if price_id is not None:
            providers.append((name, price_id))
    local = set(settings.local_models)
    provider, _, model = settings.default_model.partition("/")
    if provider == "local" and model:
        local.add(model)
    return tuple(providers), tuple(sorted(local))


def _flag(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequestError(f"query parameter '{name}' must be true or false, got '{raw}'")


def _filtered(models: tuple[dict[str, Any], ...], query: Any) -> list[dict[str, Any]]:
    provider, kind, capability = query.get("provider"), query.get("type"), query.get("capability")
    text = (query.get("q") or "").lower()
    deprecated = _flag(query.get("deprecated"), "deprecated")
    return [
        model for model in models
        if (not provider or model["provider"] == provider)
        and (not kind or model["type"] == kind)
        and (not capability or capability in model["capabilities"])
        and (not text or text in model["id"].lower() or text in model["name"].lower())
        and (deprecated is None or model["deprecated"] == deprecated)
    ]


async def list_models(req: V3Request) -> Response:
    query = req.request.query_params
    limit = query_int(req.request, "limit", 100, minimum=1, maximum=1000)
    offset = query_int(req.request, "offset", 0)
    sort, order = query.get("sort") or "id", query.get("order") or "asc"
    if sort not in SORT_KEYS:
        raise BadRequestError(f"query parameter 'sort' must be one of {', '.join(SORT_KEYS)}")
    if order not in ("asc", "desc"):
        raise BadRequestError("query parameter 'order' must be asc or desc")
    providers, local = _configuration(req.ctx.settings)
    models = await asyncio.to_thread(_catalogue, providers, local)
    matching = sorted(_filtered(models, query), key=lambda model: model[sort], reverse=order == "desc")
    return JSONResponse({"models": matching[offset:offset + limit], "total": len(matching), "offset": offset,
                         "limit": limit})


OPERATIONS = [
    Operation("GET", "/v3/models", "List the models this server can call, with prices", list_models, auth=False,
              query=("type", "provider", "q", "capability", "deprecated", "sort", "order", "limit", "offset"),
              tags=("models",)),
]
