"""Knowledge query latency at scale on SQLite, excluding the query's embedding (target: p99 <= 50 ms
at 100,000 chunks).

A benchmark, not a test. It fills one knowledge base in a fresh SQLite file with `--chunks` chunks
(unit random vectors of `--dims` dimensions, all-MiniLM-L6-v2's 384 by default, and text of words
drawn from a small vocabulary so full text has matches to rank), then times `--queries` searches as
a query runs them after its embedding: both rankings (`KnowledgeStore.ranked`, exact cosine over
every vector plus FTS5 bm25) and the read of the fused candidates (`chunk_hits`). The first search
of a base reads its vectors into memory (`VectorMatrices`): that one is reported apart. Prints p50,
p99 and max in ms.

Run from a checkout: `python -m bench.knowledge_query [--chunks 100000] [--dims 384] [--queries 200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from taskgate.engine.knowledge.service import _fused
from taskgate.store import SqlStore, open_store
from taskgate.store.examples import query_terms
from taskgate.store.knowledge_records import NewChunk

VOCABULARY = [f"w{n}" for n in range(5000)]
DOCUMENT_CHUNKS = 100  # chunks per stored document: one transaction each while filling
CANDIDATES = 10  # the spec's default prefilter_limit


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype("<f4")


async def fill(store: SqlStore, base_id: str, chunks: int, dims: int, rng: np.random.Generator) -> None:
    for start in range(0, chunks, DOCUMENT_CHUNKS):
        count = min(DOCUMENT_CHUNKS, chunks - start)
        vectors = _unit(rng.standard_normal((count, dims)))
        words = rng.integers(0, len(VOCABULARY), size=(count, 40))
        await store.knowledge.put_document(base_id, f"doc-{start}", {"n": start}, [
            NewChunk(" ".join(VOCABULARY[w] for w in row), vector.tobytes())
            for row, vector in zip(words, vectors, strict=True)])


async def measure(chunks: int, dims: int, queries: int) -> list[float]:
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as directory:
        store = await open_store(f"sqlite:///{Path(directory) / 'bench.db'}")
        assert isinstance(store, SqlStore)
        try:
            project = await store.ensure_project("bench")
            base = await store.knowledge.create_base(project, "bench", "local/bench")
            started = time.perf_counter()
            await fill(store, base.id, chunks, dims, rng)
            print(f"filled {chunks} chunks of {dims} dimensions in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            await store.knowledge.ranked(base.id, _unit(rng.standard_normal((1, dims)))[0], [], CANDIDATES)
            print(f"first query (reads the vectors into memory): {(time.perf_counter() - started) * 1000:.0f} ms")
            timings = []
            for _ in range(queries):
                vector = _unit(rng.standard_normal((1, dims)))[0]
                terms = query_terms(" ".join(VOCABULARY[w] for w in rng.integers(0, len(VOCABULARY), size=6)))
                began = time.perf_counter()
                by_vector, by_words = await store.knowledge.ranked(base.id, vector, terms, CANDIDATES)
                fused = _fused([by_vector, by_words])[:CANDIDATES]
                await store.knowledge.chunk_hits(base.id, [chunk_id for chunk_id, _ in fused])
                timings.append((time.perf_counter() - began) * 1000)
            return timings
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    timings = sorted(asyncio.run(measure(args.chunks, args.dims, args.queries)))
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    print(f"query without embedding, {args.chunks} chunks: p50 {statistics.median(timings):.1f} ms, "
          f"p99 {p99:.1f} ms, max {timings[-1]:.1f} ms over {len(timings)} queries")


if __name__ == "__main__":
    main()
