"""`GET /v3/models`: the engine's model catalogue (engine/catalogue.py) in 2.1.1's ModelInfo shape,
filtered, sorted and paged as the query asks."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from taskgate.api.body_schemas import BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, JsonSchema, array, obj, text
from taskgate.api.v3.routing import JSON, OFFSET, Operation, Param, V3Request, limit_param
from taskgate.engine.catalogue import MODEL_TYPES
from taskgate.providers.model_traits import CAPABILITIES
from taskgate.server.request_io import JSONResponse

SORT_KEYS = ("id", "name", "provider", "cost", "context_window")
_PRICES = array(NUMBER, description="USD per million tokens: the base price, then the price of each tier")
_PRICING = obj({"input": _PRICES, "output": _PRICES, "cached_input": _PRICES, "cache_creation": _PRICES,
                "per_image": array(NUMBER, description="USD per generated image, for models billed per image"),
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
    "capabilities": array({"type": "string", "enum": list(CAPABILITIES)}),
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
    models = await req.ctx.engine.catalogue.models()
    matching = sorted(_filtered(models, query), key=lambda model: model[sort], reverse=query["order"] == "desc")
    return JSONResponse({"models": matching[offset:offset + limit], "total": len(matching), "offset": offset,
                         "limit": limit})


_QUERY = (
    Param("type", STRING, f"Only models of this type ({', '.join(MODEL_TYPES)} are listed here)"),
    Param("provider", STRING, "Only this provider's models, e.g. openai"),
    Param("q", STRING, "Only models whose id or name contains this, ignoring case"),
    Param("capability", {"type": "string", "enum": list(CAPABILITIES)}, "Only models with this capability"),
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
