"""Knowledge query latency at scale on SQLite, excluding the query's embedding (target: p99 <= 50 ms
at 100,000 chunks), through sqlite-vec and through the exact search it falls back to.

A benchmark, not a test. It fills one knowledge base in a fresh SQLite file with `--chunks` chunks
(unit random vectors of `--dims` dimensions, all-MiniLM-L6-v2's 384 by default, and text of words
drawn from a small vocabulary so full text has matches to rank), then times `--queries` searches as
a query runs them after its embedding: both rankings (`KnowledgeStore.ranked`: by vector, plus FTS5
bm25) and the read of the fused candidates (`chunk_hits`). The same file is searched by two stores
in one process, one after the other with the same queries: one with sqlite-vec (its vec0 table
filled with the chunks: it answers while the base's matrix is read in the background, the matrix
once it is in memory), one with the extension switched off (exact cosine over the matrix,
`VectorMatrices`, read first when a write made it stale). The first search, and a search right
after a write of one document, are reported apart for both; the timed queries start once the
matrix is in memory (how long that took is printed too): they measure the steady state.
Prints p50, p99 and max in ms, and the ratio to exact.

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
from taskgate.store.knowledge_vectors import indexed_versions

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


async def _search(store: SqlStore, base_id: str, vector: np.ndarray, terms: list[str]) -> float:
    began = time.perf_counter()
    by_vector, by_words = await store.knowledge.ranked(base_id, vector, terms, CANDIDATES)
    fused = _fused([by_vector, by_words])[:CANDIDATES]
    await store.knowledge.chunk_hits(base_id, [chunk_id for chunk_id, _ in fused])
    return (time.perf_counter() - began) * 1000


async def _matrix_held(store: SqlStore, base_id: str, dims: int) -> float:
    """Seconds until the base's matrix, read in the background after the first search, is in memory:
    from then on both stores rank by it, and the timed queries measure that steady state (the cold
    searches are reported apart)."""
    started = time.perf_counter()
    version = await store.database.read(lambda conn: indexed_versions(conn, base_id))
    assert version is not None
    while store.knowledge.matrices.held(base_id, version[0], dims) is None:
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def measure(chunks: int, dims: int, queries: int) -> dict[str, list[float]]:
    """Timings in ms per path ("sqlite-vec", "exact"), and each path's first search and search after an add."""
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        indexed, exact = await open_store(url), await open_store(url, vector_extension=False)
        assert isinstance(indexed, SqlStore) and isinstance(exact, SqlStore)
        if indexed.database.vector_extension is None:
            raise SystemExit("sqlite-vec does not load here: nothing to compare")
        try:
            project = await indexed.ensure_project("bench")
            base = await indexed.knowledge.create_base(project, "bench", "local/bench")
            started = time.perf_counter()
            await fill(indexed, base.id, chunks, dims, rng)
            print(f"filled {chunks} chunks of {dims} dimensions in {time.perf_counter() - started:.1f} s")
            stores = {"sqlite-vec": indexed, "exact": exact}
            timings: dict[str, list[float]] = {name: [] for name in stores}
            for name, store in stores.items():
                first = await _search(store, base.id, _unit(rng.standard_normal((1, dims)))[0], [])
                print(f"{name}: first search {first:.0f} ms")
            waited = await _matrix_held(indexed, base.id, dims)
            print(f"sqlite-vec: the matrix was in memory {waited:.1f} s after the first search (the index "
                  "answered meanwhile); the timed queries below start then")
            asked = [(_unit(rng.standard_normal((1, dims)))[0],
                      query_terms(" ".join(VOCABULARY[w] for w in rng.integers(0, len(VOCABULARY), size=6))))
                     for _ in range(queries)]
            # The same queries through each store, one store after the other: interleaved, two
            # connections' page caches and two 150 MB matrices evict each other and both slow down.
            for name, store in stores.items():
                for vector, terms in asked:
                    timings[name].append(await _search(store, base.id, vector, terms))
            for name, store in stores.items():
                await fill(indexed, base.id, 1, dims, rng)  # a write (doc-0 replaced), through sqlite-vec
                after = await _search(store, base.id, _unit(rng.standard_normal((1, dims)))[0], [])
                print(f"{name}: search right after a write {after:.0f} ms")
            return timings
        finally:
            await exact.close()
            await indexed.close()


def _percentiles(timings: list[float]) -> tuple[float, float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], ordered[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    timings = asyncio.run(measure(args.chunks, args.dims, args.queries))
    _, exact_p99, _ = _percentiles(timings["exact"])
    for name, values in timings.items():
        p50, p99, worst = _percentiles(values)
        print(f"{name}: query without embedding, {args.chunks} chunks: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {worst:.1f} ms over {len(values)} queries; p99 {p99 / exact_p99:.2f}x exact's")


if __name__ == "__main__":
    main()
