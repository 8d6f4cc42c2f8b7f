"""`POST /v2/embeddings` (opperai 1.7.2 `embeddings.create`): `{input, model?}` -> `{model, data, usage}`.

The compat endpoint's path in every respect but the request's shape: the same checks
(`embedding_call`, `embedding_options`), the same engine call (priced, recorded as a span) and the
same answer, whose `model`, `data` and `usage` are the keys 1.7.2 reads. `model` is a name or a
v2 Model object `{name, options?}`; a fallback list or `extra_headers` cannot be honoured by one
embedding call and is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.openai.embeddings import (
    OPTION_NAMES,
    embedding_body,
    embedding_call,
    embedding_options,
    run_embedding,
)
from taskgate.errors import BadRequestError
from taskgate.server.request_io import JSONResponse, read_json_object

if TYPE_CHECKING:
    from taskgate.context import AppContext

# Opper's documented default (spec §2.1); it needs the azure preset configured, like any azure model.
DEFAULT_MODEL = "azure/text-embedding-3-large"


def _model(value: Any) -> tuple[Any, dict[str, Any]]:
    """The model name and the adapter options a v2 TModel gives for an embedding."""
    if value is None:
        return DEFAULT_MODEL, {}
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        raise BadRequestError("model must be a 'provider/model' name or an object {name, options?}; "
                              "embeddings take one model, not a fallback list")
    if value.get("extra_headers"):
        raise BadRequestError("model.extra_headers is not supported for embeddings")
    options = value.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequestError("model.options must be an object")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise BadRequestError(f"model.options may only set {', '.join(OPTION_NAMES)}, not '{str(unknown[0])[:100]}'")
    return value.get("name"), embedding_options(options)


async def create(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    name, options = _model(body.get("model"))
    call = embedding_call(name, body.get("input"), options)
    result = await run_embedding(ctx, request, project_id, call)
    return JSONResponse(embedding_body(call, result.response))
