"""The Cohere-style rerank wire (`POST .../rerank`), which Cohere, Jina, Together and vLLM all speak.

`{model, query, documents, top_n}` goes up; `{results: [{index, relevance_score}], ...}` comes back,
with usage as tokens (`usage.total_tokens`, Jina, vLLM, Together) or search units
(`meta.billed_units.search_units`, Cohere). Documents are sent as plain strings, the one form every
one of them takes; the caller's documents are ours to return, so none are asked back.
"""

from __future__ import annotations

from typing import Any

from taskgate.errors import UpstreamProtocolError
from taskgate.providers.base import RerankRequest, RerankResponse, Usage
from taskgate.providers.upstream_http import UpstreamHTTP


async def post_rerank(http: UpstreamHTTP, path: str, request: RerankRequest) -> RerankResponse:
    """One rerank exchange with the upstream at `path`, its answer checked against the request."""
    data = await http.post_json(path, rerank_body(request), request.options)
    return parse_rerank(data, http.provider, len(request.documents))


def rerank_body(request: RerankRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "query": request.query, "documents": request.documents}
    if request.top_n is not None:
        body["top_n"] = request.top_n
    return body


def parse_rerank(data: Any, provider: str, count: int) -> RerankResponse:
    """The ranking, most relevant first; an index out of range or given twice is the upstream's fault."""
    try:
        ranking = [(_index(row["index"], count), float(row["relevance_score"])) for row in data["results"]]
        usage = data.get("usage") or {}
        tokens = int(usage.get("total_tokens") or usage.get("prompt_tokens") or 0)
        billed = (data.get("meta") or {}).get("billed_units") or {}
        search_units = int(billed.get("search_units") or 0)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UpstreamProtocolError(f"{provider}: not a rerank response: {str(data)[:200]}") from exc
    if len({index for index, _ in ranking}) != len(ranking):
        raise UpstreamProtocolError(f"{provider}: the rerank response ranks a document twice")
    ranking.sort(key=lambda pair: -pair[1])
    return RerankResponse(ranking=ranking, usage=Usage(input_tokens=tokens), search_units=search_units,
                          model=str(data.get("model") or ""))


def _index(raw: Any, count: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < count:
        raise ValueError(f"document index {raw!r} is not one of the {count} sent")
    return raw
