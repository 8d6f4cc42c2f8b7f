"""Knowledge bases: the list, and a base's documents (paged by key), its files with their ingestion
status, and a query box that searches it as `POST /v2/knowledge/{id}/query` does (the engine's
knowledge service; the query is a POST, since it embeds the text and records a span)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response

from taskgate.api.span_bodies import MAX_ID_CHARS
from taskgate.api.v2.knowledge import DEFAULT_PREFILTER, MAX_KEY_CHARS, MAX_QUERY_CHARS
from taskgate.engine.knowledge.service import Found, KnowledgeQuery
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.store.knowledge_records import KnowledgeBaseRecord
from taskgate.ui.guard import Visit

PAGE_SIZE = 50
TOP_K = 5


async def base_list(visit: Visit) -> Response:
    raw = visit.request.query_params.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw[:7]) <= 1_000_000:
        raise BadRequestError("page must be a number from 1 to 1000000")
    page = int(raw)
    bases, total = await visit.ctx.engine.knowledge.page(visit.project_id, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return visit.page("knowledge.html", title="Knowledge bases", bases=bases, page=page,
                      more=page * PAGE_SIZE < total)


async def _base(visit: Visit) -> KnowledgeBaseRecord:
    base_id = visit.request.path_params["base_id"]
    if len(base_id) > MAX_ID_CHARS:
        raise NotFoundError("the project has no such knowledge base")
    return await visit.ctx.engine.knowledge.get(visit.project_id, base_id)


async def _base_page(visit: Visit, query: str, found: list[Found] | None) -> Response:
    base = await _base(visit)
    after = visit.request.query_params.get("after") or None
    if after is not None and len(after) > MAX_KEY_CHARS:
        raise BadRequestError(f"after must be a document key of at most {MAX_KEY_CHARS} characters")
    documents = await visit.ctx.engine.knowledge.documents(visit.project_id, base.id, after, PAGE_SIZE + 1)
    next_url = None
    if len(documents) > PAGE_SIZE:
        documents = documents[:PAGE_SIZE]
        next_url = f"/ui/knowledge/{base.id}?" + urlencode({"after": documents[-1][0]})
    files, file_total = await visit.ctx.engine.knowledge_files.page(visit.project_id, base.id, PAGE_SIZE, 0)
    return visit.page("knowledge_base.html", title=base.name, base=base, documents=documents, next_url=next_url,
                      files=files, file_total=file_total, query=query, found=found, max_query=MAX_QUERY_CHARS)


async def base_page(visit: Visit) -> Response:
    return await _base_page(visit, "", None)


async def query_base(visit: Visit) -> Response:
    text = visit.form.get("query", "").strip()
    if not text:
        raise BadRequestError("enter something to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequestError(f"a query must be at most {MAX_QUERY_CHARS} characters")
    base = await _base(visit)
    answer = await visit.ctx.engine.knowledge.query(
        visit.project_id, base.id, KnowledgeQuery(text=text, top_k=TOP_K, prefilter_limit=DEFAULT_PREFILTER,
                                                  rerank=False))
    return await _base_page(visit, text, answer.found)
