"""`POST /v2/rerank` and `GET /v2/rerank/models` over HTTP, through the fake's Cohere-style rerank
wire (Cohere's v2 and the token-billed v1 of Jina and Together), with the hostile matrix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskgate.engine.catalogue import local_embedding_installed
from tests.fakes.common import Behaviour
from tests.fakes.provider import REJECTED_MODEL, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post
from tests.span_lookup import recorded_span
from tests.span_lookup import span_by_id as span

DOCS = ["the cat sat on the mat", "stockholm is the capital of sweden", "paris is the capital of france",
        "a capital letter"]
QUERY = "capital of sweden"
PRICED = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"  # genai-prices has its input token price


def rerank_env(fake: FakeProvider) -> dict[str, str]:
    """The fake as the cohere, jina and together presets, and a short upstream timeout."""
    return {
        "COHERE_API_KEY": "co-fake", "COHERE_BASE_URL": fake.rerank_base_url("cohere"),
        "JINA_API_KEY": "jina-fake", "JINA_BASE_URL": fake.rerank_base_url("jina"),
        "TOGETHER_API_KEY": "tg-fake", "TOGETHER_BASE_URL": fake.rerank_base_url("together"),
        "TASKGATE_REQUEST_TIMEOUT": "2",
    }


@pytest.fixture(scope="module")
def rerank_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("taskgate-rerank")),
                            env=rerank_env(fake_provider))
    process.start()
    yield process
    process.stop()


def rerank(server: ServerProcess, body: Any, **kw: Any) -> Reply:
    return post(server.url + "/v2/rerank", body, **kw)


def test_ranks_through_jina_most_relevant_first(rerank_server: ServerProcess, fake: FakeProvider) -> None:
    reply = rerank(rerank_server, {"query": QUERY, "model": "jina/jina-reranker-v2-base-multilingual",
                                   "documents": [{"text": text, "metadata": {"n": n}} for n, text in enumerate(DOCS)]})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert [result["index"] for result in body["results"]] == [1, 2, 3, 0]
    assert body["results"][0] == {"index": 1, "relevance_score": 1.0,
                                  "document": {"text": DOCS[1], "metadata": {"n": 1}}}
    scores = [result["relevance_score"] for result in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["model"] == "jina/jina-reranker-v2-base-multilingual"
    assert body["usage"]["total_tokens"] > 0 and body["cost"] is None  # genai-prices has no price for it
    [sent] = [r for r in fake.requests if r.path == "/jina/v1/rerank"]
    assert sent.json == {"model": "jina-reranker-v2-base-multilingual", "query": QUERY, "documents": DOCS}
    assert sent.headers["authorization"] == "Bearer jina-fake"
    recorded = span(rerank_server, body["id"])
    assert recorded["type"] == "rerank" and recorded["name"] == "rerank"
    assert recorded["output"]["results"][0] == {"index": 1, "relevance_score": 1.0}
    assert recorded["input"] == {"query": QUERY, "documents": 4, "top_n": None}


def test_top_k_and_without_documents_through_cohere(rerank_server: ServerProcess, fake: FakeProvider) -> None:
    reply = rerank(rerank_server, {"query": QUERY, "model": "cohere/rerank-v3.5", "top_k": 2,
                                   "return_documents": False, "documents": [{"text": text} for text in DOCS]})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert [result["index"] for result in body["results"]] == [1, 2]
    assert all("document" not in result for result in body["results"])
    assert body["usage"]["search_units"] == 1
    [sent] = [r for r in fake.requests if r.path == "/cohere/v2/rerank"]
    assert sent.json["top_n"] == 2 and sent.headers["authorization"] == "Bearer co-fake"


def test_priced_by_tokens_and_recorded_with_its_cost(rerank_server: ServerProcess, fake: FakeProvider) -> None:
    reply = rerank(rerank_server, {"query": QUERY, "model": PRICED, "documents": [{"text": text} for text in DOCS]},
                   headers={"X-Opper-Name": "my-ranking"})
    assert reply.status == 200, reply.body
    body = reply.json()
    cost = body["cost"]
    assert cost["generation"] == cost["total"] > 0 and cost["platform"] == 0.0
    recorded = span(rerank_server, body["id"])
    assert recorded["name"] == "my-ranking"
    assert recorded["cost"] == pytest.approx(cost["total"])
    assert recorded["usage"]["input_tokens"] == body["usage"]["input_tokens"] > 0


def test_models_lists_the_configured_rerank_models(rerank_server: ServerProcess, server: ServerProcess) -> None:
    listed = get(rerank_server.url + "/v2/rerank/models").json()
    names = [model["name"] for model in listed["data"]]
    local = ["local/all-minilm-l6-v2"] if local_embedding_installed() else []  # needs no key, only its weights
    assert names == ["cohere/rerank-v3.5", "jina/jina-reranker-v2-base-multilingual",
                     "together/Salesforce/Llama-Rank-V1", *local]
    assert listed["meta"]["total_count"] == 3 + len(local)
    assert listed["data"][0] == {"hosting_provider": "cohere", "name": "cohere/rerank-v3.5", "location": "remote",
                                 "cost_per_request": None}
    assert get(rerank_server.url + "/v2/rerank/models?limit=1").json()["data"] == listed["data"][:1]
    # the session's server configures no rerank vendor
    assert [model["name"] for model in get(server.url + "/v2/rerank/models").json()["data"]] == local
    assert get(rerank_server.url + "/v2/rerank/models", key=None).status == 401


def good(**changes: Any) -> dict[str, Any]:
    return {"query": QUERY, "model": "jina/r", "documents": [{"text": "a"}], **changes}


@pytest.mark.parametrize(("body", "needle"), [
    (good(documents=[]), "at least one"),
    (good(documents=[{"text": "d"}] * 10_000), "at most 1000"),
    (good(documents="a"), "documents"),
    (good(documents=["a", "b"]), "documents[0]"),
    (good(documents=[{"text": 5}]), "documents[0]"),
    (good(documents=[{"text": "a", "metadata": "x"}]), "metadata"),
    (good(documents=[{"text": "a" * 40_000}]), "documents[0] is longer"),
    (good(query="q" * 40_000), "query may be at most"),
    (good(query="  "), "query"),
    (good(query=None), "query is required"),
    (good(query=7), "query"),
    (good(model=None), "model is required"),
    (good(model="jina/a\x00b"), "printable"),
    (good(model=["jina/a"]), "model"),
    (good(top_k=0), "top_k"),
    (good(top_k=2), "top_k"),
    (good(top_k=-1), "top_k"),
    (good(top_k="1"), "top_k"),
    (good(top_k=True), "top_k"),
    (good(top_k=2**70), "beyond 64 bits"),
    (good(return_documents="yes"), "return_documents"),
    (good(max_chunks_per_doc=3), "max_chunks_per_doc"),
    (good(model="openai/gpt-4o-mini"), "no rerank API"),
    (good(model="anthropic/claude-haiku-4-5"), "no rerank API"),
    (good(model="local/gemma-3-270m"), "no rerank API"),
    (good(model="nowhere/model"), "nowhere"),
    (good(model="no-provider"), "provider"),
])
def test_refuses_bad_bodies(rerank_server: ServerProcess, fake: FakeProvider, body: dict[str, Any],
                            needle: str) -> None:
    reply = rerank(rerank_server, body)
    assert reply.status == 400, reply.body
    assert needle in reply.json()["detail"]
    assert not [r for r in fake.requests if r.path.endswith("/rerank")]  # refused before any upstream call


def test_bounded_and_malformed_transport(rerank_server: ServerProcess) -> None:
    url = rerank_server.url + "/v2/rerank"
    assert post(url, good(query="x" * (11 * 1024 * 1024))).status == 413
    deep = post(url, raw=b'{"documents": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert deep.status == 400 and "type" in deep.json()
    assert post(url, raw=b"not json").status == 400
    assert post(url, [1, 2]).status == 400
    assert post(url, good(), key="wrong").status == 401


@pytest.mark.parametrize(("behaviour", "status", "needle"), [
    (Behaviour(status=500), 502, "jina"),
    (Behaviour(status=429), 429, "jina"),
    (Behaviour(delay_s=3.0), 504, "no answer within 2s"),
    (Behaviour(raw_body=b'{"results": [{"index": 9, "relevance_score": 1}]}'), 502, "not a rerank response"),
    (Behaviour(raw_body=b'{"results": [{"index": 0, "relevance_score": 1}, {"index": 0, "relevance_score": 1}]}'),
     502, "twice"),
    (Behaviour(raw_body=b"<html>"), 502, "not JSON"),
])
def test_provider_failures_are_provider_errors(rerank_server: ServerProcess, fake: FakeProvider,
                                               behaviour: Behaviour, status: int, needle: str) -> None:
    fake.script("flaky-reranker", behaviour)
    reply = rerank(rerank_server, good(model="jina/flaky-reranker"))
    assert reply.status == status, reply.body
    assert needle in reply.json()["detail"]


def test_unknown_upstream_model_is_its_error_and_recorded(rerank_server: ServerProcess) -> None:
    reply = rerank(rerank_server, good(model=f"jina/{REJECTED_MODEL}"))
    assert reply.status == 400, reply.body
    assert REJECTED_MODEL in reply.json()["detail"]


def test_an_alias_falls_back_to_its_next_reranker(rerank_server: ServerProcess, fake: FakeProvider) -> None:
    name = f"rerankers-{uuid.uuid4().hex[:8]}"
    made = post(rerank_server.url + "/v2/models/aliases",
                {"name": name, "fallback_models": ["jina/down-reranker", "cohere/rerank-v3.5"]})
    assert made.status == 200, made.body
    fake.script("down-reranker", Behaviour(status=503))
    reply = rerank(rerank_server, {"query": QUERY, "model": name, "documents": [{"text": text} for text in DOCS]})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model"] == "cohere/rerank-v3.5" and body["results"][0]["index"] == 1
    assert [r.path for r in fake.requests] == ["/jina/v1/rerank", "/cohere/v2/rerank"]
    recorded = span(rerank_server, body["id"])
    assert recorded["model_chain"] == ["jina/down-reranker", "cohere/rerank-v3.5"]
    assert recorded["models_failed"] == ["jina/down-reranker"] and recorded["model"] == "cohere/rerank-v3.5"


def test_a_failed_rerank_is_recorded_as_an_error_span(rerank_server: ServerProcess, fake: FakeProvider) -> None:
    name = f"failing-{uuid.uuid4().hex[:8]}"
    fake.script("broken-reranker", Behaviour(status=500))
    reply = rerank(rerank_server, good(model="jina/broken-reranker"), headers={"X-Opper-Name": name})
    assert reply.status == 502, reply.body
    recorded = recorded_span(rerank_server, name)
    assert recorded["type"] == "rerank" and recorded["status"] == "error" and recorded["cost"] is None


def test_a_huge_model_name_is_refused(rerank_server: ServerProcess, fake: FakeProvider) -> None:
    reply = rerank(rerank_server, good(model="jina/" + "m" * 100_000))
    assert reply.status == 400, reply.body
    assert "256" in reply.json()["detail"]
    assert not fake.requests
