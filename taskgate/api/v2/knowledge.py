"""v2 knowledge bases (spec §2.1, §7.5): create, list, read and delete them, add documents, search
them, delete documents by filter, and read a document by key. Behaviour is the engine's
(`engine.knowledge.service`); this reads the requests and shapes the answers.

Both spellings of the chunking settings are read: v2's `configuration.text_processing.chunk_size`
(also written as the flat key `"text_processing.chunk_size"`) and 2.1.1's `configuration.chunk_size`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import identifier, optional, stored_id
from taskgate.api.v2.paging import page_of, paged
from taskgate.api.v2.single_model import MAX_MODEL_NAME_CHARS
from taskgate.engine.knowledge.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunking
from taskgate.engine.knowledge.filters import parse_filters
from taskgate.engine.knowledge.service import KnowledgeQuery
from taskgate.errors import BadRequestError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.request_io import JSONResponse, parse_json_body, read_body, read_json_object
from taskgate.store.knowledge_records import KnowledgeBaseRecord

if TYPE_CHECKING:
    from taskgate.context import AppContext

MAX_NAME_CHARS = 300
MAX_KEY_CHARS = 1000
MAX_QUERY_CHARS = 10_000
MAX_TOP_K = 100
MAX_PREFILTER = 1000
MAX_CHUNK_SIZE = 100_000
DEFAULT_TOP_K = 3
DEFAULT_PREFILTER = 10
RERANK_HEADER = "X-Taskgate-Rerank"


def _base_body(base: KnowledgeBaseRecord, *, count: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"id": base.id, "name": base.name, "created_at": base.created_at,
                            "embedding_model": base.embedding_model}
    if count:
        body["count"] = base.count
    return body


def _base_id(request: Request) -> str:
    return stored_id(request.path_params["knowledge_base_id"], "knowledge base")


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequestError(f"'{key}' must be an integer from {low} to {high}, got {value!r}")
    return value


def chunking_of(raw: Any) -> Chunking:
    """`configuration`: `{text_processing: {chunk_size, chunk_overlap}}`, `{"text_processing.chunk_size": …}`
    or 2.1.1's `{chunk_size, chunk_overlap}`."""
    if raw is None:
        return Chunking()
    if not isinstance(raw, dict):
        raise BadRequestError("'configuration' must be an object or null")
    nested = raw.get("text_processing")
    if nested is not None and not isinstance(nested, dict):
        raise BadRequestError("'configuration.text_processing' must be an object")
    settings = {**raw, **(nested or {})}
    for key in ("chunk_size", "chunk_overlap"):
        if f"text_processing.{key}" in raw:
            settings[key] = raw[f"text_processing.{key}"]
    size = _int(settings, "chunk_size", DEFAULT_CHUNK_SIZE, 1, MAX_CHUNK_SIZE)
    overlap = _int(settings, "chunk_overlap", min(DEFAULT_CHUNK_OVERLAP, size - 1), 0, MAX_CHUNK_SIZE)
    if overlap >= size:
        raise BadRequestError(f"'chunk_overlap' ({overlap}) must be smaller than 'chunk_size' ({size})")
    return Chunking(size=size, overlap=overlap)


async def create(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    name = optional(body, "name", str, "a string")
    if name is None:
        raise BadRequestError("'name' is required")
    name = identifier(name, "'name'", MAX_NAME_CHARS)
    model = optional(body, "embedding_model", str, "a string or null")
    if model is not None:
        model = identifier(model.strip(), "'embedding_model'", MAX_MODEL_NAME_CHARS)
    base = await ctx.engine.knowledge.create(project_id, name, model)
    return JSONResponse(_base_body(base, count=False))


async def list_bases(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    page = page_of(request)
    bases, total = await ctx.engine.knowledge.page(project_id, page.limit, page.offset)
    return JSONResponse(paged([_base_body(base, count=False) for base in bases], total))


async def get(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    return JSONResponse(_base_body(await ctx.engine.knowledge.get(project_id, _base_id(request)), count=True))


async def get_by_name(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    name = identifier(request.path_params["name"], "the knowledge base name", MAX_NAME_CHARS)
    return JSONResponse(_base_body(await ctx.engine.knowledge.by_name(project_id, name), count=True))


async def delete(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    await ctx.engine.knowledge.delete(project_id, _base_id(request))
    return Response(status_code=204)


async def add(ctx: AppContext, request: Request) -> Response:
    """201 `{id, key, metadata}` (2.1.1 reads these; 1.7.2 takes any JSON)."""
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    content = optional(body, "content", str, "a string")
    if content is None or not content.strip():
        raise BadRequestError("'content' is required and must not be blank")
    key = optional(body, "key", str, "a string or null")
    if key is not None:
        key = identifier(key, "'key'", MAX_KEY_CHARS)
    metadata = optional(body, "metadata", dict, "an object or null") or {}
    chunking = chunking_of(body.get("configuration"))
    knowledge = ctx.engine.knowledge
    document_id, key = await until_client_leaves(
        request, knowledge.add(project_id, _base_id(request), content, key, metadata, chunking))
    return JSONResponse({"id": document_id, "key": key, "metadata": metadata}, status_code=201)


async def query(ctx: AppContext, request: Request) -> Response:
    """A bare list `[{id, key, content, metadata, score}]`, best first: `id` and `key` are the
    document's, `content` the matching chunk's, `score` the fused rank score (or the rerank model's)."""
    project_id = await ctx.auth.project_for(request)
    body = await read_json_object(request, ctx.settings.max_body_bytes)
    text = optional(body, "query", str, "a string")
    if text is None or not text.strip():
        raise BadRequestError("'query' is required and must not be blank")
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequestError(f"'query' must be at most {MAX_QUERY_CHARS} characters")
    rerank = optional(body, "rerank", bool, "a boolean")
    parent = optional(body, "parent_span_id", str, "a string or null")
    asked = KnowledgeQuery(text=text, top_k=_int(body, "top_k", DEFAULT_TOP_K, 1, MAX_TOP_K),
                           prefilter_limit=_int(body, "prefilter_limit", DEFAULT_PREFILTER, 1, MAX_PREFILTER),
                           filters=parse_filters(body.get("filters")), rerank=rerank is not False,
                           parent_span_id=identifier(parent, "'parent_span_id'", 100) if parent else None)
    answer = await until_client_leaves(request, ctx.engine.knowledge.query(project_id, _base_id(request), asked))
    headers = {"X-Opper-Span-Id": answer.span_id}
    if asked.rerank:
        headers[RERANK_HEADER] = "applied" if answer.reranked else "skipped; no TASKGATE_KNOWLEDGE_RERANK_MODEL"
    return JSONResponse([{"id": found.hit.document_id, "key": found.hit.key, "content": found.hit.content,
                          "metadata": found.hit.metadata, "score": found.score} for found in answer.found],
                        headers=headers)


async def delete_documents(ctx: AppContext, request: Request) -> Response:
    """`{filters?}` (an empty body too): `{deleted_count}`; no filters delete every document."""
    project_id = await ctx.auth.project_for(request)
    raw = await read_body(request, ctx.settings.max_body_bytes)
    body = parse_json_body(raw) if raw.strip() else None
    if body is not None and not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object {filters?} or empty")
    filters = parse_filters((body or {}).get("filters"))
    count = await ctx.engine.knowledge.delete_documents(project_id, _base_id(request), filters)
    return JSONResponse({"deleted_count": count})


async def get_document(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    key = identifier(request.path_params["document_key"], "the document key", MAX_KEY_CHARS)
    document = await ctx.engine.knowledge.document(project_id, _base_id(request), key)
    return JSONResponse({"id": document.id, "key": document.key, "metadata": document.metadata,
                         "segments": [{"id": str(chunk_id), "content": content}
                                      for chunk_id, content in document.segments]})
