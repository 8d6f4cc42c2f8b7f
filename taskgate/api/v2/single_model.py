"""What v2's single-model endpoints (rerank, OCR) share: the `model` field, the cost object, and
the page of configured models their `GET .../models` lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import identifier
from taskgate.api.v2.paging import page_of, paged
from taskgate.engine.models import MAX_MODEL_NAME_CHARS
from taskgate.errors import BadRequestError
from taskgate.server.request_io import JSONResponse

if TYPE_CHECKING:
    from taskgate.context import AppContext


def model_name(body: Mapping[str, Any], example: str) -> str:
    """The one model (or alias, or custom model) the request names: no fallback list, no options."""
    value = body.get("model")
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f"model is required: a 'provider/model' name such as {example}, or an alias")
    return identifier(value.strip(), "model", MAX_MODEL_NAME_CHARS)


def cost_body(cost: float | None) -> dict[str, float] | None:
    """v2's `{generation, platform, total}`: this server adds no platform fee; unknown stays null."""
    return None if cost is None else {"generation": cost, "platform": 0.0, "total": cost}


def listed_models(ctx: AppContext, request: Request, names: tuple[str, ...], price_key: str) -> Response:
    """A page of the configured models among `names`; no price table knows their price per request
    or page, so `price_key` is null."""
    page = page_of(request)
    models = [{"hosting_provider": provider, "name": name, "location": "local" if provider == "local" else "remote",
               price_key: None}
              for provider, name in ctx.engine.catalogue.configured(names)]
    return JSONResponse(paged(models[page.offset:page.offset + page.limit], len(models)))
