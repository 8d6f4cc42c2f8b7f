"""Knowledge bases: create, fill, search and empty them, scoped to a project.

Adding a document cuts it into chunks (`chunking`), embeds them with the knowledge base's model
through the engine's embedding path, a batch per request, and stores the document and its chunks in
one transaction, replacing the document that had the same key. A query embeds its text the same way,
ranks the base's chunks by meaning and by words (`KnowledgeStore.ranked`), fuses the two rankings by
reciprocal rank, keeps the documents that pass the metadata filters, and, when asked and a rerank
model is configured (TASKGATE_KNOWLEDGE_RERANK_MODEL), orders those by the rerank model.

Every add and query is a span (type "knowledge") with what it cost; its embedding and rerank
requests are spans under it, each with its own cost. A query's span goes under `parent_span_id`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


from taskgate.engine.embeddings import EmbeddingResult, EmbeddingTask
from taskgate.engine.knowledge.chunking import Chunking, split
from taskgate.engine.knowledge.filters import Filter, passes
from taskgate.engine.rerank import Reranker, RerankTask
from taskgate.engine.spans import SpanService
from taskgate.errors import BadRequestError, NotFoundError, TaskgateError, UpstreamProtocolError
from taskgate.ids import new_id
from taskgate.store.base import SpanRecord, Store
from taskgate.store.examples import query_terms
from taskgate.store.knowledge_records import ChunkHit, DocumentRecord, KnowledgeBaseRecord, NewChunk

Embed = Callable[[EmbeddingTask], Awaitable[EmbeddingResult]]

EMBED_BATCH = 64  # chunks per embedding request
MAX_CHUNKS = 5000  # per document: bounds one add's embedding requests and transaction
# Weighted reciprocal rank fusion: a chunk's rank r in a ranking adds weight / (k + r). The vector
# ranking is read sharply (a small k: its first places count) and full text weakly, so words in
# common reorder close vector ranks and bring in exact-term matches, but cannot push a paraphrase's
# best chunk down. On bench/knowledge_quality.py (paraphrased questions, local/all-minilm-l6-v2)
# the usual even fusion (k 60 for both) found the right chunk first for 14 of 32 questions; this, 32.
FUSION = ((10.0, 1.0), (60.0, 0.3))  # (k, weight) of the vector ranking, then of the full-text ranking
SPAN_TYPE = "knowledge"


@dataclass(frozen=True, slots=True)
class KnowledgeQuery:
    text: str
    top_k: int
    prefilter_limit: int
    filters: list[Filter] = field(default_factory=list)
    rerank: bool = True
    parent_span_id: str | None = None


@dataclass(slots=True)
class Found:
    hit: ChunkHit
    score: float


@dataclass(slots=True)
class QueryAnswer:
    found: list[Found]
    reranked: bool  # False when rerank was asked for but no rerank model is configured, or not asked for
    span_id: str


class KnowledgeService:
    def __init__(self, store: Store, embed: Embed, reranker: Reranker, spans: SpanService,
                 default_embedding_model: str, rerank_model: str | None = None) -> None:
        self._store = store.knowledge
        self._embed = embed
        self._reranker = reranker
        self._spans = spans
        self.default_embedding_model = default_embedding_model
        self.rerank_model = rerank_model

    # ---- knowledge bases

    async def create(self, project_id: str, name: str, embedding_model: str | None) -> KnowledgeBaseRecord:
        return await self._store.create_base(project_id, name, embedding_model or self.default_embedding_model)

    async def page(self, project_id: str, limit: int, offset: int) -> tuple[list[KnowledgeBaseRecord], int]:
        return await self._store.list_bases(project_id, limit, offset)

    async def get(self, project_id: str, base_id: str) -> KnowledgeBaseRecord:
        base = await self._store.get_base(project_id, base_id=base_id)
        if base is None:
            raise NotFoundError(f"knowledge base '{base_id}' not found")
        return base

    async def by_name(self, project_id: str, name: str) -> KnowledgeBaseRecord:
        base = await self._store.get_base(project_id, name=name)
        if base is None:
            raise NotFoundError(f"knowledge base named '{name}' not found")
        return base

    async def delete(self, project_id: str, base_id: str) -> None:
        if not await self._store.delete_base(project_id, base_id):
            raise NotFoundError(f"knowledge base '{base_id}' not found")

    # ---- documents

    async def add(self, project_id: str, base_id: str, content: str, key: str | None, metadata: dict[str, Any],
                  chunking: Chunking) -> tuple[str, str]:
        """Store the document (replacing the one with its key, a new one when None); its id and key.
        Nothing is stored when embedding fails."""
        base = await self.get(project_id, base_id)
        pieces = split(content, chunking)
        if len(pieces) > MAX_CHUNKS:
            raise BadRequestError(f"the document would make {len(pieces)} chunks, more than {MAX_CHUNKS}: "
                                  "raise text_processing.chunk_size")
        span = _Span(project_id, "knowledge.add", parent_id=None, trace_id=new_id(),
                     input={"knowledge_base": base.name, "key": key, "chunks": len(pieces)})
        key = key or new_id()
        try:
            vectors = await self._vectors(span, base.embedding_model, pieces)
            document_id = await self._store.put_document(
                base.id, key, metadata,
                [NewChunk(piece, vector) for piece, vector in zip(pieces, vectors, strict=True)])
        except TaskgateError as exc:
            self._spans.record(span.done(None, exc))
            raise
        self._spans.record(span.done({"document_id": document_id, "chunks": len(pieces)}, None))
        return document_id, key

    async def documents(self, project_id: str, base_id: str, after: str | None,
                        limit: int) -> list[tuple[str, dict[str, Any]]]:
        """A page of the base's documents by key: (key, metadata), those after `after` when given."""
        base = await self.get(project_id, base_id)
        return await self._store.list_documents(base.id, after, limit)

    async def document(self, project_id: str, base_id: str, key: str) -> DocumentRecord:
        base = await self.get(project_id, base_id)
        document = await self._store.get_document(base.id, key)
        if document is None:
            raise NotFoundError(f"knowledge base '{base_id}' has no document '{key}'")
        return document

    async def delete_documents(self, project_id: str, base_id: str, filters: list[Filter]) -> int:
        """Delete the documents whose metadata passes every filter (no filters: every document)."""
        base = await self.get(project_id, base_id)
        if not filters:
            return await self._store.delete_documents(base.id, None)
        matching = [document_id for document_id, metadata in await self._store.document_metadata(base.id)
                    if passes(metadata, filters)]
        return await self._store.delete_documents(base.id, matching)

    # ---- search

    async def query(self, project_id: str, base_id: str, query: KnowledgeQuery) -> QueryAnswer:
        base = await self.get(project_id, base_id)
        trace_id = await self._spans.trace_for(project_id, query.parent_span_id)
        span = _Span(project_id, "knowledge.query", parent_id=query.parent_span_id, trace_id=trace_id,
                     input={"knowledge_base": base.name, "query": query.text, "top_k": query.top_k,
                            "prefilter_limit": query.prefilter_limit, "rerank": query.rerank})
        try:
            answer = await self._search(span, base, query)
        except TaskgateError as exc:
            self._spans.record(span.done(None, exc))
            raise
        span.meta["reranked"] = answer.reranked
        self._spans.record(span.done([{"key": f.hit.key, "segment": f.hit.chunk_id, "score": f.score}
                                      for f in answer.found], None))
        return answer

    async def _search(self, span: _Span, base: KnowledgeBaseRecord, query: KnowledgeQuery) -> QueryAnswer:
        import numpy as np

        [vector] = await self._vectors(span, base.embedding_model, [query.text])
        candidates = max(query.prefilter_limit, query.top_k)
        by_vector, by_words = await self._store.ranked(base.id, np.frombuffer(vector, dtype="<f4"),
                                                       query_terms(query.text), candidates)
        fused = _fused([by_vector, by_words])[:candidates]
        hits = await self._store.chunk_hits(base.id, [chunk_id for chunk_id, _ in fused])
        scores = dict(fused)
        kept = [Found(hit, scores[hit.chunk_id]) for hit in hits if passes(hit.metadata, query.filters)]
        if query.rerank and self.rerank_model and kept:
            return QueryAnswer(await self._reranked(span, query, kept), reranked=True, span_id=span.id)
        return QueryAnswer(kept[:query.top_k], reranked=False, span_id=span.id)

    async def _reranked(self, span: _Span, query: KnowledgeQuery, kept: list[Found]) -> list[Found]:
        assert self.rerank_model is not None
        result = await self._reranker.rerank(RerankTask(
            project_id=span.project_id, model=self.rerank_model, query=query.text,
            documents=[found.hit.content for found in kept], top_n=min(query.top_k, len(kept)),
            name="knowledge.rerank", parent_span_id=span.id, trace_id=span.trace_id))
        span.add_cost(result.cost)
        return [Found(kept[index].hit, score) for index, score in result.response.ranking]

    async def _vectors(self, span: _Span, model: str, texts: list[str]) -> list[bytes]:
        """Unit-length float32 vectors of `texts`, a batch per request, each a span under `span`."""
        vectors: list[bytes] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start:start + EMBED_BATCH]
            result = await self._embed(EmbeddingTask(
                project_id=span.project_id, model=model, inputs=batch, name="knowledge.embed",
                parent_span_id=span.id, trace_id=span.trace_id))
            span.add_cost(result.cost)
            if len(result.response.vectors) != len(batch):
                raise BadRequestError(f"the embedding model {model} answered {len(result.response.vectors)} "
                                      f"vectors for {len(batch)} texts")
            vectors.extend(_unit(vector) for vector in result.response.vectors)
        return vectors


def _unit(vector: list[float]) -> bytes:
    """The vector at unit length as float32 bytes. Scaled by its largest value first, so a model's huge
    values (past float32's range) cannot overflow into inf or NaN, which the vector index (pgvector)
    refuses; an empty vector or a non-finite value is the upstream's malformed answer."""
    import numpy as np

    array = np.asarray(vector, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise UpstreamProtocolError("the embedding model answered an empty or non-finite vector")
    largest = float(np.abs(array).max())
    if largest:
        array = array / largest
        array = array / float(np.linalg.norm(array))
    return array.astype("<f4").tobytes()


def _fused(rankings: list[list[int]]) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion (see FUSION) of the vector ranking, then the full-text one:
    each chunk scores the sum of weight / (k + rank) over the rankings it is in (rank from 1), best
    first; ties keep the order of first appearance."""
    scores: dict[int, float] = {}
    for ranking, (k, weight) in zip(rankings, FUSION, strict=True):
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


@dataclass(slots=True)
class _Span:
    """The span of one add or query, made before its embedding requests name it as their parent."""

    project_id: str
    name: str
    parent_id: str | None
    trace_id: str
    input: Any
    id: str = field(default_factory=new_id)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    cost: float | None = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def add_cost(self, cost: float | None) -> None:
        """An unknown price makes the total unknown."""
        self.cost = None if cost is None or self.cost is None else self.cost + cost

    def done(self, output: Any, error: TaskgateError | None) -> SpanRecord:
        return SpanRecord(id=self.id, trace_id=self.trace_id, project_id=self.project_id, name=self.name,
                          type=SPAN_TYPE, parent_id=self.parent_id, start_time=self.started,
                          end_time=datetime.now(UTC), input=self.input, output=output,
                          error=error.detail if error else None, status="error" if error else "ok",
                          cost=self.cost, meta=self.meta)
