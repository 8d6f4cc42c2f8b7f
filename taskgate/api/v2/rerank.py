"""`POST /v2/rerank` and `GET /v2/rerank/models` (opperai 1.7.2 `rerank.documents`, `rerank.list_models`).

The request is read into the engine's `RerankTask` (which bounds it), and the ranking shaped as
RerankResponseModel: `{id, results: [{index, relevance_score, document?}], model, usage, cost}`, with
the span's id as `id`. `max_chunks_per_doc` is Cohere's v1 knob that its current API and the other
vendors lack: set, it is refused rather than ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.openai.chat_request import header_name, header_parent
from taskgate.api.request_fields import optional
from taskgate.api.v2.single_model import cost_body, listed_models, model_name
from taskgate.engine.rerank import DEFAULT_RERANK_NAME, RerankTask
from taskgate.errors import BadRequestError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.request_io import JSONResponse, header_map, read_json_object

if TYPE_CHECKING:
    from taskgate.context import AppContext


def _documents(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise BadRequestError("documents must be an array of objects {text, metadata?}")
    for position, document in enumerate(raw):
        if not isinstance(document, dict) or not isinstance(document.get("text"), str):
            raise BadRequestError(f"documents[{position}] must be an object with a string 'text'")
        if document.get("metadata") is not None and not isinstance(document["metadata"], dict):
            raise BadRequestError(f"documents[{position}].metadata must be an object or null")
    return raw


def _count(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadRequestError(f"'{key}' must be an integer or null")
    return value


async def documents(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    query = optional(body, "query", str, "a string")
    if query is None:
        raise BadRequestError("query is required")
    model = model_name(body, "cohere/rerank-v3.5")
    docs = _documents(body.get("documents"))
    return_documents = optional(body, "return_documents", bool, "a boolean")
    if body.get("max_chunks_per_doc") is not None:
        raise BadRequestError("'max_chunks_per_doc' is not supported: documents are ranked whole")
    headers = header_map(request)
    task = RerankTask(project_id=project_id, model=model, query=query,
                      documents=[document["text"] for document in docs], top_n=_count(body, "top_k"),
                      name=header_name(headers, DEFAULT_RERANK_NAME), parent_span_id=header_parent(headers))
    result = await until_client_leaves(request, ctx.engine.reranker.rerank(task))
    response = result.response
    results = []
    for index, score in response.ranking:
        entry: dict[str, Any] = {"index": index, "relevance_score": score}
        if return_documents is not False:
            entry["document"] = {"text": docs[index]["text"], "metadata": docs[index].get("metadata")}
        results.append(entry)
    tokens = response.usage.input_tokens
    return JSONResponse({
        "id": result.span_id,
        "results": results,
        "model": result.model,
        "usage": {"input_tokens": tokens, "total_tokens": tokens, "search_units": response.search_units},
        "cost": cost_body(result.cost),
    })


async def list_models(ctx: AppContext, request: Request) -> Response:
    await ctx.auth.project_for(request)
    return listed_models(ctx, request, ctx.engine.reranker.limits.models, "cost_per_request")
