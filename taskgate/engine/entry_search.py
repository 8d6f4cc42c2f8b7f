"""Finding a function's entries (its few-shot examples) closest to a text, by meaning when it can.

With a dataset embedding model configured (`TASKGATE_DATASET_EMBEDDING_MODEL`), each entry's input
is embedded when it is written, through the engine's Embedder (so it is priced and recorded like
every embedding), and a search embeds its query and ranks the newest `MAX_RANKED` vectors of the
function by cosine similarity. Without one, or when embedding fails, or for entries that have no
vector yet, the store's full-text ranking answers (BM25 on SQLite, ts_rank on Postgres). A failed
embedding never loses an entry: it is stored all the same, found by its words, and a log line says so.

The v2 query endpoint and the few-shot selection of every call use this one search.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from taskgate.engine.embeddings import EmbeddingResult, EmbeddingTask
from taskgate.errors import TaskgateError
from taskgate.store.base import ExampleRecord, Store

log = logging.getLogger("taskgate.datasets")

MAX_RANKED = 2000  # vectors ranked per search: bounds its database read and CPU whatever the dataset's size
MAX_EMBED_CHARS = 8000  # of an input's text: about what embedding models take in one piece
EMBED_BATCH = 256  # texts per embedding request
EMBEDDING_SPAN_NAME = "dataset-embedding"
MAX_QUERY_TERMS = 64  # a long input would make a slow full-text query without ranking any better
_WORD = re.compile(r"\w+", re.UNICODE)

Embed = Callable[[EmbeddingTask], Awaitable[EmbeddingResult]]

if TYPE_CHECKING:
    pass


def entry_text(value: Any) -> str:
    """What is embedded of an input (or a query): a string as it is, anything else as its JSON."""
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text[:MAX_EMBED_CHARS]


def query_text(value: Any) -> str:
    """The distinct words of a value's strings and scalars, in order, for full-text ranking. Object
    keys are left out on purpose: every entry of a function shares them, so they only add noise."""
    words: dict[str, None] = {}
    for text in _texts(value):
        for word in _WORD.findall(text):
            words.setdefault(word.lower(), None)
            if len(words) >= MAX_QUERY_TERMS:
                return " ".join(words)
    return " ".join(words)


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    return [str(value)]


class EntrySearch:
    def __init__(self, store: Store, embed: Embed | None = None, model: str | None = None) -> None:
        """`embed` and `model` together turn on semantic search; without them it is full text only."""
        self._store = store
        self._embed = embed if model else None
        self._model = model or ""

    @property
    def semantic(self) -> bool:
        return self._embed is not None

    async def vectors(self, project_id: str, values: list[Any]) -> list[list[float]] | None:
        """The vectors of these values' texts, or None when there is no model or embedding failed
        (logged: the caller then keeps to full text)."""
        if self._embed is None or not values:
            return None
        vectors: list[list[float]] = []
        try:
            for start in range(0, len(values), EMBED_BATCH):
                texts = [entry_text(value) for value in values[start:start + EMBED_BATCH]]
                result = await self._embed(EmbeddingTask(
                    project_id=project_id, model=self._model, inputs=texts, name=EMBEDDING_SPAN_NAME))
                vectors.extend(result.response.vectors)
        except TaskgateError as exc:
            log.warning("embedding with %s failed (%s); dataset entries are found by full text", self._model,
                        exc.detail)
            return None
        return vectors if len(vectors) == len(values) else None

    async def index(self, project_id: str, entries: list[ExampleRecord]) -> None:
        """Embed and store the vectors of these entries' inputs (nothing without a model; on a failure
        the entries stay, found by full text)."""
        vectors = await self.vectors(project_id, [entry.input for entry in entries])
        if vectors:
            await self._store.set_example_embeddings(
                project_id, [(entry.id, vector) for entry, vector in zip(entries, vectors, strict=True)], self._model)

    async def search(self, project_id: str, function_id: str, value: Any, limit: int) -> list[ExampleRecord]:
        """Up to `limit` entries of the function, closest to `value` first: the semantically nearest;
        then, for entries without a vector (or with no model), the best full-text matches; then the
        newest, because a demonstration of the task still beats none (a nearest-neighbour search
        always answers `limit` too). The query is embedded only when the function has vectors."""
        if limit <= 0:
            return []
        found: list[ExampleRecord] = []
        if self._embed is not None:
            stored = await self._store.embedded_examples(project_id, function_id, self._model, MAX_RANKED)
            vectors = await self.vectors(project_id, [value]) if stored else None
            if vectors:
                found = await self._nearest(project_id, function_id, stored, vectors[0], limit)
        words = query_text(value)
        if len(found) < limit and words:
            found = _joined(found, await self._store.search_examples(project_id, function_id, words, limit), limit)
        if len(found) < limit:
            newest = await self._store.list_examples(project_id, function_id, limit=limit + len(found))
            found = _joined(found, newest, limit)
        return found

    async def _nearest(self, project_id: str, function_id: str, stored: list[tuple[str, list[float]]],
                       query: list[float], limit: int) -> list[ExampleRecord]:
        """The stored vectors most like `query` by cosine similarity (those of another length, from a
        model configured with other dimensions, left out)."""
        import numpy as np

        stored = [(entry_id, vector) for entry_id, vector in stored if len(vector) == len(query)]
        if not stored:
            return []
        matrix = np.asarray([vector for _, vector in stored], dtype=np.float32)
        target = np.asarray(query, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(target) or 1.0)
        scores = (matrix @ target) / np.where(norms == 0, 1.0, norms)
        best = np.argsort(-scores, kind="stable")[:limit]
        return await self._store.examples_by_ids(project_id, function_id, [stored[int(i)][0] for i in best])


def _joined(first: list[ExampleRecord], more: list[ExampleRecord], limit: int) -> list[ExampleRecord]:
    """`first`, then those of `more` not in it, up to `limit` in all."""
    taken = {entry.id for entry in first}
    return first + [entry for entry in more if entry.id not in taken][: limit - len(first)]
