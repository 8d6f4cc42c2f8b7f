"""A knowledge query with `rerank: true` on a server given TASKGATE_KNOWLEDGE_RERANK_MODEL: the
filtered candidates are ordered by the rerank model (the fake's Cohere wire scores word overlap),
and the rerank request is a span under the query's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_v2_knowledge import DOCS, add, make_base, query
from tests.e2e.test_v2_rerank import rerank_env
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import get
from tests.span_lookup import wait_until


@pytest.fixture(scope="module")
def rerank_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {**rerank_env(fake_provider), "TASKGATE_KNOWLEDGE_RERANK_MODEL": "cohere/rerank-v3.5"}
    process = ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("taskgate-knowledge-rerank")), env=env)
    process.start()
    yield process
    process.stop()


def test_rerank_orders_the_filtered_candidates(rerank_server: ServerProcess, fake: FakeProvider) -> None:
    base_id = make_base(rerank_server)["id"]
    for key, (content, metadata) in DOCS.items():
        assert add(rerank_server, base_id, content=content, key=key, metadata=metadata).status == 201
    reply = query(rerank_server, base_id, query="capital Sweden islands", top_k=2,
                  filters=[{"field": "year", "operation": ">", "value": 2016}])
    assert reply.status == 200, reply.body
    assert reply.headers["x-taskgate-rerank"] == "applied"
    found = reply.json()
    assert [(hit["key"], hit["score"]) for hit in found] == [("stockholm", 1.0), ("paris", pytest.approx(1 / 3))]
    [sent] = [r.json for r in fake.requests if r.path.endswith("/rerank")]
    assert sent["query"] == "capital Sweden islands" and sent["top_n"] == 2
    assert DOCS["bread"][0] not in sent["documents"]  # filtered out (2015) before reranking
    span_id = reply.headers["x-opper-span-id"]
    spans: list[dict[str, Any]] = []

    def recorded() -> bool:
        got = get(f"{rerank_server.url}/v3/spans/{span_id}")
        if got.status == 200:
            spans[:] = get(f"{rerank_server.url}/v3/traces/{got.json()['trace_id']}").json()["data"]["spans"]
        return len(spans) == 3

    assert wait_until(recorded), spans
    children = {span["name"]: span for span in spans if span["parent_id"] == span_id}
    assert set(children) == {"knowledge.embed", "knowledge.rerank"}
    assert children["knowledge.rerank"]["type"] == "rerank"
    assert query(rerank_server, base_id, query="capital", rerank=False).headers.get("x-taskgate-rerank") is None
