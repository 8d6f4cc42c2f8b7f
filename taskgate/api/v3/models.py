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

from taskgate.api.body_schemas import BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, JsonSchema, array, obj, text
from taskgate.api.v3.routing import JSON, OFFSET, Operation, Param, V3Request, limit_param
from taskgate.config import Settings
from taskgate.providers.registry import ProviderRegistry
from taskgate.server.request_io import JSONResponse

LOCAL_DISPLAY_NAME = "Local (llama.cpp)"
SORT_KEYS = ("id", "name", "provider", "cost", "context_window")
MODEL_TYPES = ("llm", "embedding")
_PRICES = array(NUMBER, description="USD per million tokens: the base price, then the price of each tier")
_PRICING = obj({"input": _PRICES, "output": _PRICES, "cached_input": _PRICES, "cache_creation": _PRICES,
                "thresholds": array(INTEGER, description="The token counts where the tiers start")},
               required=("input", "output"))
_MODEL_INFO: dict[str, JsonSchema] = {
    "id": text("`provider/model`, as calls name it"),
    "name": STRING,
    "type": {"type": "string", "enum": list(MODEL_TYPES)},
    "provider": STRING,
    "provider_display_name": STRING,
    "model_id": STRING,
    "description": STRING,
    "capabilities": array(STRING),
    "speed": STRING,
    "quality": STRING,
    "cost": {**NUMBER, "description": "USD per million input plus output tokens: one figure to sort by"},
    "context_window": {**INTEGER, "description": "Tokens; 0 when unknown"},
    "params": OBJECT,
    "pricing": _PRICING,
    "api_type": STRING,
    "aliases": array(STRING),
    "deprecated": BOOLEAN,
}
MODEL_INFO: JsonSchema = obj(_MODEL_INFO, required=tuple(_MODEL_INFO), title="ModelInfo")
MODELS_RESPONSE: JsonSchema = obj({"models": array(MODEL_INFO), "total": INTEGER, "offset": INTEGER, "limit": INTEGER},
                                  required=("models", "total", "offset", "limit"), title="ModelsResponse")


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


def _configuration(settings: Settings,
                   registry: ProviderRegistry) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    providers = []
    for name in registry.configured():
        price_id = registry.price_provider(name)
        if price_id is not None:
            providers.append((name, price_id))
    local = set(settings.local_models)
    provider, _, model = settings.default_model.partition("/")
    if provider == "local" and model:
        local.add(model)
    return tuple(providers), tuple(sorted(local))


def _filtered(models: tuple[dict[str, Any], ...], query: dict[str, Any]) -> list[dict[str, Any]]:
    provider, kind, capability = query["provider"], query["type"], query["capability"]
    text = (query["q"] or "").lower()
    deprecated = query["deprecated"]
    return [
        model for model in models
        if (not provider or model["provider"] == provider)
        and (not kind or model["type"] == kind)
        and (not capability or capability in model["capabilities"])
        and (not text or text in model["id"].lower() or text in model["name"].lower())
        and (deprecated is None or model["deprecated"] == deprecated)
    ]


async def list_models(req: V3Request) -> Response:
    query = req.query
    limit, offset, sort = query["limit"], query["offset"], query["sort"]
    providers, local = _configuration(req.ctx.settings, req.ctx.engine.providers)
    models = await asyncio.to_thread(_catalogue, providers, local)
    matching = sorted(_filtered(models, query), key=lambda model: model[sort], reverse=query["order"] == "desc")
    return JSONResponse({"models": matching[offset:offset + limit], "total": len(matching), "offset": offset,
                         "limit": limit})


_QUERY = (
    Param("type", STRING, f"Only models of this type ({', '.join(MODEL_TYPES)} are listed here)"),
    Param("provider", STRING, "Only this provider's models, e.g. openai"),
    Param("q", STRING, "Only models whose id or name contains this, ignoring case"),
    Param("capability", STRING, "Only models with this capability"),
    Param("deprecated", BOOLEAN, "Only deprecated models (true) or only current ones (false)"),
    Param("sort", {"type": "string", "enum": list(SORT_KEYS), "default": "id"}, "The field to sort by"),
    Param("order", {"type": "string", "enum": ["asc", "desc"], "default": "asc"}, "The sort order"),
    limit_param(100, 1000),
    OFFSET,
)
OPERATIONS = [
    Operation("GET", "/v3/models", "List the models this server can call, with prices", list_models,
              {JSON: MODELS_RESPONSE}, auth=False, query=_QUERY, tags=("models",)),
]
