"""v2 datasets over raw HTTP against `taskgate serve`, on SQLite and Postgres: entries written, read,
searched (full text, and by embeddings on a server given a dataset embedding model), shared with
v3 examples, and every bad request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.test_v2_functions import UNKNOWN, assert_error, create, other_key, unique, v2
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import post, request

EMBEDDING_MODEL = "openai/text-embedding-3-small"


def dataset(server: ServerProcess, **fields: Any) -> dict[str, Any]:
    """A new function; its dataset id is `dataset_id`."""
    return create(server, unique("data"), **fields)


def add(server: ServerProcess, dataset_id: str, **entry: Any) -> dict[str, Any]:
    reply = post(v2(server, f"/datasets/{dataset_id}"), entry)
    assert reply.status == 200, reply.body
    return reply.json()  # type: ignore[no-any-return]


def test_entries_are_written_read_and_deleted(any_server: ServerProcess, fake: FakeProvider) -> None:
    did = dataset(any_server)["dataset_id"]
    made = add(any_server, did, input={"q": "two plus two"}, output={"a": 4}, expected={"a": 4.0},
               comment="arithmetic")
    assert made == {"id": made["id"], "input": '{"q":"two plus two"}', "output": '{"a":4}', "expected": '{"a":4.0}',
                    "comment": "arithmetic"}
    plain = add(any_server, did, input="hello", output="HELLO")
    assert (plain["input"], plain["output"], plain["expected"], plain["comment"]) == ("hello", "HELLO", None, None)
    assert request("GET", v2(any_server, f"/datasets/{did}/entries/{made['id']}")).json() == made
    listed = request("GET", v2(any_server, f"/datasets/{did}/entries")).json()
    assert listed["meta"]["total_count"] == 2 and [e["id"] for e in listed["data"]] == [plain["id"], made["id"]]
    page = request("GET", f"{any_server.url}/datasets/{did}/entries?offset=1&limit=1").json()  # root path too
    assert page["meta"]["total_count"] == 2 and [e["id"] for e in page["data"]] == [made["id"]]

    patched = request("PATCH", v2(any_server, f"/datasets/{did}/entries/{made['id']}"),
                      {"output": "four", "comment": None}).json()
    assert patched == {**made, "output": "four", "comment": None}
    assert request("DELETE", v2(any_server, f"/datasets/{did}/entries/{made['id']}")).status == 204
    assert_error(request("GET", v2(any_server, f"/datasets/{did}/entries/{made['id']}")), 404)
    assert_error(request("DELETE", v2(any_server, f"/datasets/{did}/entries/{made['id']}")), 404)
    assert request("GET", v2(any_server, f"/datasets/{did}/entries")).json()["meta"]["total_count"] == 1


def test_entries_are_v3_examples(any_server: ServerProcess, fake: FakeProvider) -> None:
    function = dataset(any_server)
    entry = add(any_server, function["dataset_id"], input={"city": "Oslo"}, output="Norway")
    v3 = request("GET", f"{any_server.url}/v3/functions/{function['name']}/examples").json()["examples"]
    assert v3 == [{"uuid": entry["id"], "input": {"city": "Oslo"}, "output": "Norway", "tag": None}]
    example = post(f"{any_server.url}/v3/functions/{function['name']}/examples",
                   {"input": "Lima", "output": "Peru", "tag": "golden"}).json()
    listed = request("GET", v2(any_server, f"/datasets/{function['dataset_id']}/entries")).json()["data"]
    assert [e["id"] for e in listed] == [example["uuid"], entry["id"]]


def test_query_ranks_by_words_without_an_embedding_model(any_server: ServerProcess, fake: FakeProvider) -> None:
    did = dataset(any_server)["dataset_id"]
    ids = {word: add(any_server, did, input=f"a note about {word}", output=word)["id"]
           for word in ("cats", "dogs", "birds", "fish", "frogs", "mice")}
    found = request("POST", v2(any_server, f"/datasets/{did}/entries/query?query=dogs"))
    assert found.status == 200 and isinstance(found.json(), list)
    entries = found.json()
    assert entries[0]["id"] == ids["dogs"] and len(entries) == 5  # limit 5 by default, filled up
    one = request("POST", v2(any_server, f"/datasets/{did}/entries/query?query=birds&limit=1")).json()
    assert [e["id"] for e in one] == [ids["birds"]]
    assert len(request("POST", v2(any_server, f"/datasets/{did}/entries/query?query=x&limit=500")).json()) == 6
    assert not [r for r in fake.requests if r.path.endswith("/embeddings")]  # no model: nothing embedded


def test_expected_is_the_demonstrated_answer(any_server: ServerProcess, fake: FakeProvider) -> None:
    function = dataset(any_server)
    add(any_server, function["dataset_id"], input="hi", output="draft", expected="reviewed")
    post(v2(any_server, f"/functions/{function['id']}/call"), {"input": "hi"})
    assert {"role": "assistant", "content": "reviewed"} in fake.requests[-1].json["messages"]


# ---- bad input


@pytest.mark.parametrize("dataset_id", [UNKNOWN, "nope", "%00", "y" * 3000])
def test_unknown_datasets_and_entries_are_404(any_server: ServerProcess, fake: FakeProvider, dataset_id: str) -> None:
    for method, path, body in (
        ("POST", f"/datasets/{dataset_id}", {"input": 1, "output": 2}),
        ("GET", f"/datasets/{dataset_id}/entries", None),
        ("GET", f"/datasets/{dataset_id}/entries/{UNKNOWN}", None),
        ("PATCH", f"/datasets/{dataset_id}/entries/{UNKNOWN}", {"output": 1}),
        ("DELETE", f"/datasets/{dataset_id}/entries/{UNKNOWN}", None),
        ("POST", f"/datasets/{dataset_id}/entries/query?query=x", None),
    ):
        assert_error(request(method, v2(any_server, path), body), 404)
    did = dataset(any_server)["dataset_id"]
    for entry_id in (UNKNOWN, "nope", "%00"):
        assert_error(request("GET", v2(any_server, f"/datasets/{did}/entries/{entry_id}")), 404)
        assert_error(request("PATCH", v2(any_server, f"/datasets/{did}/entries/{entry_id}"), {"output": 1}), 404)


def test_another_datasets_entry_and_another_projects_dataset_are_404(any_server: ServerProcess,
                                                                     fake: FakeProvider) -> None:
    mine, other = dataset(any_server)["dataset_id"], dataset(any_server)["dataset_id"]
    entry = add(any_server, other, input="x", output="y")
    assert_error(request("GET", v2(any_server, f"/datasets/{mine}/entries/{entry['id']}")), 404)
    assert_error(request("DELETE", v2(any_server, f"/datasets/{mine}/entries/{entry['id']}")), 404)
    theirs = create(any_server, unique("theirs"), key=other_key(any_server))["dataset_id"]
    for method, path, body in (
        ("POST", f"/datasets/{theirs}", {"input": 1, "output": 2}),
        ("GET", f"/datasets/{theirs}/entries", None),
        ("POST", f"/datasets/{theirs}/entries/query?query=x", None),
    ):
        assert_error(request(method, v2(any_server, path), body), 404)


def test_a_deleted_functions_dataset_is_gone(any_server: ServerProcess, fake: FakeProvider) -> None:
    function = dataset(any_server)
    request("DELETE", v2(any_server, f"/functions/{function['id']}"))
    assert_error(request("GET", v2(any_server, f"/datasets/{function['dataset_id']}/entries")), 404)


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"output": 1}, 422, "'input'"),
    ({"input": 1}, 422, "'output'"),
    ({}, 422, "'input' and 'output'"),
    ({"input": 1, "output": 2, "comment": 5}, 422, "'comment'"),
])
def test_malformed_entry_bodies(any_server: ServerProcess, fake: FakeProvider, body: dict[str, Any], status: int,
                                needle: str) -> None:
    did = dataset(any_server)["dataset_id"]
    assert needle in assert_error(post(v2(any_server, f"/datasets/{did}"), body), status)["detail"]
    for raw in (b"{nope", b"[]", b'{"input": ' + b"[" * 200 + b"]" * 200 + b', "output": 1}'):
        assert_error(request("POST", v2(any_server, f"/datasets/{did}"), raw=raw), 400)
    entry = add(any_server, did, input="a", output="b")
    assert_error(request("PATCH", v2(any_server, f"/datasets/{did}/entries/{entry['id']}"), {"comment": []}), 422)
    assert_error(request("PATCH", v2(any_server, f"/datasets/{did}/entries/{entry['id']}"), raw=b"7"), 400)


@pytest.mark.parametrize("query", ["", "query=", "query=%20", "query=x&limit=-1", "query=x&limit=abc",
                                   "query=x&limit=99999999999", "query=" + "q" * 10_001])
def test_bad_query_parameters_are_400(any_server: ServerProcess, fake: FakeProvider, query: str) -> None:
    did = dataset(any_server)["dataset_id"]
    assert_error(request("POST", v2(any_server, f"/datasets/{did}/entries/query?{query}")), 400)


@pytest.mark.parametrize("query", ["offset=-1", "limit=x", "offset=99999999999"])
def test_bad_paging_is_400(any_server: ServerProcess, fake: FakeProvider, query: str) -> None:
    did = dataset(any_server)["dataset_id"]
    assert_error(request("GET", v2(any_server, f"/datasets/{did}/entries?{query}")), 400)


# ---- semantic search: a server with a dataset embedding model


@pytest.fixture(scope="module")
def embedding_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(fake_provider, tmp_path_factory.mktemp("taskgate-embeddings"),
                            env={"TASKGATE_DATASET_EMBEDDING_MODEL": EMBEDDING_MODEL})
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def unembeddable_server(fake_provider: FakeProvider,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A model whose provider is not configured: every embedding fails."""
    process = ServerProcess(fake_provider, tmp_path_factory.mktemp("taskgate-no-embeddings"),
                            env={"TASKGATE_DATASET_EMBEDDING_MODEL": "nowhere/embedder"})
    process.start()
    yield process
    process.stop()


def embedded(fake: FakeProvider) -> list[list[str]]:
    return [r.json["input"] for r in fake.requests if r.path.endswith("/embeddings")]


def test_entries_are_embedded_and_queries_ranked_by_cosine(embedding_server: ServerProcess,
                                                           fake: FakeProvider) -> None:
    function = dataset(embedding_server)
    did = function["dataset_id"]
    # The fake's vectors hash the text: only the very same text is near, whatever the words share.
    first = add(embedding_server, did, input="shared words one", output="1")
    second = add(embedding_server, did, input={"k": "shared words two"}, output="2")
    assert embedded(fake) == [["shared words one"], ['{"k":"shared words two"}']]
    assert [r.json["model"] for r in fake.requests] == ["text-embedding-3-small"] * 2
    query = quote('{"k":"shared words two"}')
    found = request("POST", v2(embedding_server, f"/datasets/{did}/entries/query?query={query}"))
    assert [e["id"] for e in found.json()] == [second["id"], first["id"]]
    assert embedded(fake)[-1] == ['{"k":"shared words two"}']
    request("PATCH", v2(embedding_server, f"/datasets/{did}/entries/{first['id']}"), {"input": "changed"})
    assert embedded(fake)[-1] == ["changed"]  # a new input gets a new vector
    ranked = request("POST", v2(embedding_server, f"/datasets/{did}/entries/query?query=changed&limit=1")).json()
    assert [e["id"] for e in ranked] == [first["id"]]

    fake.clear()
    post(v2(embedding_server, f"/functions/{function['id']}/call"), {"input": "changed"})
    assert embedded(fake) == [["changed"]]  # the call's few-shot search embeds its input
    chat = [r for r in fake.requests if r.path.endswith("/chat/completions")][-1].json["messages"]
    assert [m["content"] for m in chat if m["role"] == "assistant"] == ["1", "2"]


def test_an_embedding_failure_keeps_the_entry_and_falls_back_to_words(unembeddable_server: ServerProcess,
                                                                      fake: FakeProvider) -> None:
    did = dataset(unembeddable_server)["dataset_id"]
    kept = add(unembeddable_server, did, input="the orange cat", output="cat")
    add(unembeddable_server, did, input="a green frog", output="frog")
    found = request("POST", v2(unembeddable_server, f"/datasets/{did}/entries/query?query=cat&limit=1")).json()
    assert [e["id"] for e in found] == [kept["id"]]
    assert "dataset entries are found by full text" in unembeddable_server.stderr_text()
    assert json.loads(request("GET", v2(unembeddable_server, f"/datasets/{did}/entries")).body)["meta"] == {
        "total_count": 2}
