"""v2 knowledge bases over raw HTTP against `taskgate serve`, on SQLite and Postgres alike: bases made,
listed, read and deleted; documents added (chunked, replaced by key), searched (hybrid, filtered),
read and deleted by filter; spans with their cost; and the hostile matrix."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.test_v2_functions import UNKNOWN, assert_error, other_key, unique, v2
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import KEY, Reply, get, post, request
from tests.span_lookup import wait_until

WORDS_MODEL = "openai/text-embedding-bow-1"  # the fake embeds it by words (tests/fakes/openai_wire.py)
PRICED_MODEL = "openai/text-embedding-3-small"

DOCS = {
    "stockholm": ("Stockholm is the capital of Sweden and sits on fourteen islands.", {"country": "se", "year": 2020}),
    "paris": ("Paris is the capital of France, on the river Seine.", {"country": "fr", "year": 2018}),
    "cats": ("Cats sleep for most of the day and hunt at night.", {"topic": "animals", "year": 2021}),
    "bread": ("Sourdough bread needs flour, water, salt and a starter.", {"topic": "food", "year": 2015}),
}


def make_base(server: ServerProcess, model: str = WORDS_MODEL, key: str = KEY) -> dict[str, Any]:
    reply = post(v2(server, "/knowledge"), {"name": unique("kb"), "embedding_model": model}, key=key)
    assert reply.status == 200, reply.body
    return reply.json()


def add(server: ServerProcess, base_id: str, **body: Any) -> Reply:
    return post(v2(server, f"/knowledge/{base_id}/add"), body)


def query(server: ServerProcess, base_id: str, **body: Any) -> Reply:
    return post(v2(server, f"/knowledge/{base_id}/query"), body)


def filled(server: ServerProcess) -> str:
    base_id: str = make_base(server)["id"]
    for key, (content, metadata) in DOCS.items():
        assert add(server, base_id, content=content, key=key, metadata=metadata).status == 201
    return base_id


def test_bases_are_made_listed_read_and_deleted(any_server: ServerProcess) -> None:
    made = make_base(any_server)
    assert set(made) == {"id", "name", "created_at", "embedding_model"}
    assert made["embedding_model"] == WORDS_MODEL
    got = get(v2(any_server, f"/knowledge/{made['id']}")).json()
    assert got == {**made, "count": 0}
    assert get(v2(any_server, f"/knowledge/by-name/{quote(made['name'])}")).json() == got
    listed = get(v2(any_server, "/knowledge?limit=1000")).json()
    assert made in listed["data"] and listed["meta"]["total_count"] >= 1
    assert request("DELETE", v2(any_server, f"/knowledge/{made['id']}")).status == 204
    assert_error(get(v2(any_server, f"/knowledge/{made['id']}")), 404)
    assert_error(request("DELETE", v2(any_server, f"/knowledge/{made['id']}")), 404)


def test_default_embedding_model_is_the_settings(any_server: ServerProcess) -> None:
    reply = post(v2(any_server, "/knowledge"), {"name": unique("kb")})
    assert reply.status == 200, reply.body
    assert reply.json()["embedding_model"] == "local/all-minilm-l6-v2"


def test_documents_are_chunked_read_and_replaced_by_key(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    text = " ".join(f"word{n}" for n in range(300))  # 2,389 characters
    reply = add(any_server, base_id, content=text, key="long", metadata={"a": 1},
                configuration={"text_processing": {"chunk_size": 500, "chunk_overlap": 100}})
    assert reply.status == 201, reply.body
    assert reply.json()["key"] == "long" and reply.json()["metadata"] == {"a": 1}
    document = get(v2(any_server, f"/knowledge/{base_id}/documents/long")).json()
    segments = [segment["content"] for segment in document["segments"]]
    assert len(segments) >= 5 and all(len(segment) <= 500 for segment in segments)
    assert segments[0].split()[-1] in segments[1]  # consecutive chunks overlap
    assert " ".join(segments).split()[-1] == "word299"
    assert document["metadata"] == {"a": 1} and document["key"] == "long"
    # 2.1.1's spelling, and the same key replaces the document
    assert add(any_server, base_id, content="short now", key="long", configuration={"chunk_size": 50,
                                                                                  "chunk_overlap": 0}).status == 201
    again = get(v2(any_server, f"/knowledge/{base_id}/documents/long")).json()
    assert [segment["content"] for segment in again["segments"]] == ["short now"] and again["metadata"] == {}
    assert get(v2(any_server, f"/knowledge/{base_id}")).json()["count"] == 1
    keyless = add(any_server, base_id, content="no key given").json()
    assert keyless["key"] and get(v2(any_server, f"/knowledge/{base_id}/documents/{keyless['key']}")).status == 200


def test_hybrid_search_finds_by_meaning_and_words_then_filters(any_server: ServerProcess) -> None:
    base_id = filled(any_server)
    found = query(any_server, base_id, query="which city is the capital of Sweden", top_k=2, rerank=False)
    assert found.status == 200, found.body
    body = found.json()
    assert isinstance(body, list) and len(body) == 2
    assert body[0]["key"] == "stockholm" and body[1]["key"] == "paris"
    assert set(body[0]) == {"id", "key", "content", "metadata", "score"}
    assert body[0]["metadata"] == {"country": "se", "year": 2020} and body[0]["score"] > body[1]["score"]
    filtered = query(any_server, base_id, query="capital of Sweden", top_k=3,
                     filters=[{"field": "country", "operation": "=", "value": "fr"}]).json()
    assert [hit["key"] for hit in filtered] == ["paris"]
    newer = query(any_server, base_id, query="capital", top_k=10, prefilter_limit=10,
                  filters=[{"field": "year", "operation": ">", "value": 2019}]).json()
    assert {hit["key"] for hit in newer} == {"stockholm", "cats"}
    chosen = query(any_server, base_id, query="bread cats", top_k=10,
                   filters=[{"field": "topic", "operation": "in", "value": ["food", "animals"]},
                            {"field": "year", "operation": "<", "value": 2020}]).json()
    assert [hit["key"] for hit in chosen] == ["bread"]
    others = query(any_server, base_id, query="capital", top_k=10,
                   filters=[{"field": "country", "operation": "!=", "value": "se"}]).json()
    assert "stockholm" not in {hit["key"] for hit in others} and "cats" in {hit["key"] for hit in others}


def test_rerank_without_a_rerank_model_says_it_was_skipped(any_server: ServerProcess) -> None:
    base_id = filled(any_server)
    reply = query(any_server, base_id, query="capital of Sweden")  # rerank defaults to true
    assert reply.status == 200
    assert reply.headers["x-taskgate-rerank"].startswith("skipped")
    assert len(reply.json()) == 3
    assert "x-taskgate-rerank" not in query(any_server, base_id, query="capital", rerank=False).headers


def test_delete_by_filter_and_delete_all(any_server: ServerProcess) -> None:
    base_id = filled(any_server)
    url = v2(any_server, f"/knowledge/{base_id}/query")
    gone = request("DELETE", url, {"filters": [{"field": "year", "operation": "<", "value": 2019}]})
    assert gone.status == 200 and gone.json() == {"deleted_count": 2}
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/documents/paris")), 404)
    assert {hit["key"] for hit in query(any_server, base_id, query="capital bread", top_k=10).json()} == {
        "stockholm", "cats"}
    assert request("DELETE", url, {"filters": [{"field": "year", "operation": "=", "value": 1}]}).json() == {
        "deleted_count": 0}
    assert request("DELETE", url).json() == {"deleted_count": 2}
    assert query(any_server, base_id, query="capital").json() == []
    assert get(v2(any_server, f"/knowledge/{base_id}")).json()["count"] == 0


def test_each_query_and_embedding_batch_is_a_span_with_its_cost(any_server: ServerProcess,
                                                                fake: FakeProvider) -> None:
    base_id = make_base(any_server, PRICED_MODEL)["id"]
    assert add(any_server, base_id, content="alpha beta gamma", key="a").status == 201
    parent = post(f"{any_server.url}/v3/spans", {"name": unique("caller")})
    assert parent.status in (200, 201), parent.body
    parent_id = parent.json()["data"]["id"]
    reply = query(any_server, base_id, query="alpha", parent_span_id=parent_id, rerank=False)
    assert reply.status == 200, reply.body
    span_id = reply.headers["x-opper-span-id"]
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        got = get(f"{any_server.url}/v3/spans/{span_id}")
        if got.status == 200:
            found.append(got.json())
        return bool(found)

    assert wait_until(recorded), "the query span was not recorded"
    span = found[0]
    assert span["parent_id"] == parent_id and span["name"] == "knowledge.query"
    trace = get(f"{any_server.url}/v3/traces/{span['trace_id']}").json()["data"]["spans"]
    [embedding] = [s for s in trace if s["parent_id"] == span_id]
    assert embedding["name"] == "knowledge.embed" and embedding["type"] == "embedding"
    assert embedding["cost"] is not None and embedding["cost"] > 0
    assert span["cost"] == pytest.approx(embedding["cost"])
    sent = [r.json for r in fake.requests if r.path.endswith("/embeddings")]
    assert sent[-1]["input"] == ["alpha"] and sent[-2]["input"] == ["alpha beta gamma"]


# ---- hostile


def test_unknown_and_other_project_ids_are_404(any_server: ServerProcess) -> None:
    base_id = filled(any_server)
    stranger = other_key(any_server)
    for method, path, body in [("GET", "", None), ("DELETE", "", None), ("POST", "/add", {"content": "x"}),
                               ("POST", "/query", {"query": "x"}), ("DELETE", "/query", None),
                               ("GET", "/documents/paris", None)]:
        assert_error(request(method, v2(any_server, f"/knowledge/{base_id}{path}"), body, key=stranger), 404)
        assert_error(request(method, v2(any_server, f"/knowledge/{UNKNOWN}{path}"), body), 404)
        assert_error(request(method, v2(any_server, f"/knowledge/not-an-id{path}"), body), 404)
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/documents/nope")), 404)
    name = get(v2(any_server, f"/knowledge/{base_id}")).json()["name"]
    assert_error(get(v2(any_server, f"/knowledge/by-name/{name}"), key=stranger), 404)
    assert get(v2(any_server, f"/knowledge/{base_id}")).json()["count"] == 4  # the stranger deleted nothing


def test_duplicate_name_is_409_and_bad_bases_are_400(any_server: ServerProcess) -> None:
    name = make_base(any_server)["name"]
    assert_error(post(v2(any_server, "/knowledge"), {"name": name}), 409)
    for body in [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": "a\x00b"}, {"name": "x" * 301},
                 {"name": unique("kb"), "embedding_model": 3}, {"name": unique("kb"), "embedding_model": ""}]:
        assert_error(post(v2(any_server, "/knowledge"), body), 400)


@pytest.mark.parametrize("body", [
    {}, {"query": ""}, {"query": "   "}, {"query": 3}, {"query": "x" * 10_001},
    {"query": "x", "top_k": 0}, {"query": "x", "top_k": 10_000}, {"query": "x", "top_k": -1},
    {"query": "x", "top_k": "3"}, {"query": "x", "top_k": True}, {"query": "x", "prefilter_limit": 0},
    {"query": "x", "prefilter_limit": 10**9}, {"query": "x", "rerank": "yes"},
    {"query": "x", "filters": {"field": "a"}}, {"query": "x", "filters": [{"field": "a", "operation": "~",
                                                                          "value": 1}]},
    {"query": "x", "filters": [{"field": "a", "operation": "like", "value": "%"}]},
    {"query": "x", "filters": [{"field": "a", "operation": "in", "value": "a"}]},
    {"query": "x", "filters": [{"field": "a", "operation": ">", "value": [1]}]},
    {"query": "x", "filters": [{"field": "", "operation": "=", "value": 1}]},
    {"query": "x", "filters": [{"field": "a", "operation": "="}]},
    {"query": "x", "filters": [{"field": "a", "operation": "=", "value": 1}] * 33},
    {"query": "x", "filters": ["a"]},
])
def test_bad_queries_are_400(any_server: ServerProcess, body: dict[str, Any]) -> None:
    base_id = make_base(any_server)["id"]
    assert_error(query(any_server, base_id, **body), 400)


def test_unknown_parent_span_is_404(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    assert_error(query(any_server, base_id, query="x", parent_span_id=UNKNOWN), 404)


@pytest.mark.parametrize("body", [
    {}, {"content": ""}, {"content": "  "}, {"content": 5}, {"content": "x", "metadata": [1]},
    {"content": "x", "metadata": "a"}, {"content": "x", "key": ""}, {"content": "x", "key": 3},
    {"content": "x", "key": "a\nb"}, {"content": "x", "configuration": "big"},
    {"content": "x", "configuration": {"text_processing": {"chunk_size": 0}}},
    {"content": "x", "configuration": {"text_processing": {"chunk_size": 100, "chunk_overlap": 100}}},
    {"content": "x", "configuration": {"chunk_size": -5}},
    {"content": "x", "configuration": {"text_processing.chunk_overlap": "a"}},
    {"content": "x " * 10_000, "configuration": {"chunk_size": 2, "chunk_overlap": 1}},  # too many chunks
])
def test_bad_documents_are_400(any_server: ServerProcess, body: dict[str, Any]) -> None:
    base_id = make_base(any_server)["id"]
    assert_error(add(any_server, base_id, **body), 400)
    assert get(v2(any_server, f"/knowledge/{base_id}")).json()["count"] == 0


def test_huge_content_is_413_and_bad_delete_bodies_400(any_server: ServerProcess) -> None:
    base_id = make_base(any_server)["id"]
    assert_error(add(any_server, base_id, content="x" * (11 * 1024 * 1024)), 413)
    url = v2(any_server, f"/knowledge/{base_id}/query")
    assert_error(request("DELETE", url, raw=b"[1]"), 400)
    assert_error(request("DELETE", url, raw=b"{not json"), 400)
    assert_error(request("DELETE", url, {"filters": [{"field": "a", "operation": "??", "value": 1}]}), 400)


def test_a_failed_embedding_stores_nothing(any_server: ServerProcess, fake: FakeProvider) -> None:
    base_id = make_base(any_server, "openai/reject-model")["id"]
    reply = add(any_server, base_id, content="hello", key="k")
    assert reply.status >= 400 and reply.status != 500, reply.body
    assert_error(get(v2(any_server, f"/knowledge/{base_id}/documents/k")), 404)
