"""Retrieval quality of knowledge search: top-1 and top-3 hit rates on bench/data/knowledge_quality.json
(32 short documents, 32 questions paraphrasing one document each in other words), for one embedding
model, by the hybrid query a client gets, by the vectors alone and by full text alone.

A benchmark, not a test. It starts `taskgate serve` on a fresh data directory with this process's
environment (so the model's provider must be configured there, or be local), fills a knowledge base
through `POST /v2/knowledge/{id}/add`, and asks each question through `POST …/query` (rerank off).
The vector-only and text-only rankings are read from the server's SQLite file with the store's own
search (`KnowledgeStore.ranked`), the question's vector from `POST /v2/embeddings`; vectors alone are
ranked twice, through the vector index the server ran with (sqlite-vec, where it loads) and exactly.

Run from a checkout: `python -m bench.knowledge_quality --model local/all-minilm-l6-v2`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import GATEWAY_CPU, GATEWAY_KEY, ROOT, free_port, subprocess_server
from taskgate.store import SqlStore, open_store
from taskgate.store.examples import query_terms

DATA = ROOT / "bench" / "data" / "knowledge_quality.json"
TOP = 3


def call(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {GATEWAY_KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.loads(reply.read())


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise SystemExit("taskgate serve did not become ready")


def rates(found: list[list[str]], expected: list[str]) -> str:
    top1 = sum(keys[:1] == [want] for keys, want in zip(found, expected, strict=True))
    top3 = sum(want in keys[:TOP] for keys, want in zip(found, expected, strict=True))
    return f"top-1 {top1}/{len(expected)} ({top1 / len(expected):.0%}), top-3 {top3}/{len(expected)} " \
           f"({top3 / len(expected):.0%})"


async def store_rankings(database: str, base_id: str, questions: list[str], vectors: list[list[float]],
                         vector_extension: bool) -> tuple[str, list[list[str]], list[list[str]]]:
    """(the vector search used, by vector alone, by words alone): the keys of each question's best TOP chunks."""
    store = await open_store(database, vector_extension=vector_extension)
    assert isinstance(store, SqlStore)
    try:
        by_vector, by_words = [], []
        for question, raw in zip(questions, vectors, strict=True):
            vector = np.asarray(raw, dtype="<f4")
            vector /= np.linalg.norm(vector) or 1.0
            meaning, _ = await store.knowledge.ranked(base_id, vector, [], TOP)
            _, words = await store.knowledge.ranked(base_id, None, query_terms(question), TOP)
            by_vector.append([hit.key for hit in await store.knowledge.chunk_hits(base_id, meaning)])
            by_words.append([hit.key for hit in await store.knowledge.chunk_hits(base_id, words)])
        return store.database.vector_extension or "exact", by_vector, by_words
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the embedding model, e.g. local/all-minilm-l6-v2")
    args = parser.parse_args()
    data = json.loads(DATA.read_text())
    questions = [item["question"] for item in data["questions"]]
    expected = [item["key"] for item in data["questions"]]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="taskgate-bench-") as data_dir:
        env = {**os.environ, "TASKGATE_API_KEYS": GATEWAY_KEY}
        serve = [sys.executable, "-c", "from taskgate.cli import main; main()", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--data-dir", data_dir, "--log-level", "warning"]
        with subprocess_server("taskgate", serve, env, url, GATEWAY_CPU):
            wait_ready(url)
            base_id = call(f"{url}/v2/knowledge", {"name": "quality", "embedding_model": args.model})["id"]
            for document in data["documents"]:
                call(f"{url}/v2/knowledge/{base_id}/add", {"content": document["content"], "key": document["key"]})
            hybrid = [[hit["key"] for hit in call(f"{url}/v2/knowledge/{base_id}/query",
                                                  {"query": question, "top_k": TOP, "rerank": False})]
                      for question in questions]
            vectors = [item["embedding"] for item in call(f"{url}/v2/embeddings",
                                                          {"input": questions, "model": args.model})["data"]]
            database = f"sqlite:///{Path(data_dir) / 'taskgate.db'}"
            path, by_vector, by_words = asyncio.run(store_rankings(database, base_id, questions, vectors, True))
            _, exactly, _ = asyncio.run(store_rankings(database, base_id, questions, vectors, False))
    print(f"{len(data['documents'])} documents, {len(questions)} questions, model {args.model}")
    print(f"hybrid (vectors + full text, fused): {rates(hybrid, expected)}")
    print(f"{f'vectors alone ({path}):':36}{rates(by_vector, expected)}")
    print(f"vectors alone (exact):              {rates(exactly, expected)}")
    print(f"full text alone:                    {rates(by_words, expected)}")


if __name__ == "__main__":
    main()
