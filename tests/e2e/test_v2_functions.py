"""v2 functions over raw HTTP against `taskgate serve`, on SQLite and Postgres: the function API,
its revisions, stored-function calls and streams, the few-shot count, and every bad request."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import KEY, Reply, post, request, sse_events

SCHEMA_IN = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
SCHEMA_OUT = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}
UNKNOWN = "0190a8c2-7d3e-7a1b-8c4d-5e6f7a8b9c0d"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def v2(server: ServerProcess, path: str) -> str:
    return f"{server.url}/v2{path}"


def create(server: ServerProcess, name: str, key: str = KEY, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "instructions": "Add the numbers.", **fields}
    reply = post(v2(server, "/functions"), body, key=key)
    assert reply.status == 201, reply.body
    return reply.json()  # type: ignore[no-any-return]


def assert_error(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["detail"] and body["type"]
    return body  # type: ignore[no-any-return]


def other_key(server: ServerProcess) -> str:
    """A key of another project in the same server's store."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "taskgate"), "keys", "create", "--project", unique("other"),
         "--data-dir", str(server.data_dir)], env=server.env, capture_output=True, text=True, check=True,
    ).stdout.strip()


# ---- the function API


def test_create_get_list_update_delete(any_server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("team/adder")
    made = create(any_server, name, description="Adds", input_schema=SCHEMA_IN, output_schema=SCHEMA_OUT,
                  model="openai/gpt-4o-mini", configuration={"invocation.few_shot.count": 2})
    assert made["name"] == name and made["instructions"] == "Add the numbers." and made["description"] == "Adds"
    assert made["model"] == "openai/gpt-4o-mini" and made["observer_enabled"] is True
    assert made["dataset_id"] and made["revision_id"] and made["input_schema"] == SCHEMA_IN
    assert made["configuration"] == {
        "invocation.few_shot.count": 2, "invocation.structured_generation.max_attempts": 5,
        "invocation.cache.ttl": 0, "beta.invocation.input_validation.enabled": False,
        "beta.invocation.xml_mode.enabled": False}
    assert request("GET", v2(any_server, f"/functions/{made['id']}")).json() == made
    assert request("GET", v2(any_server, f"/functions/by-name/{name}")).json() == made  # `/` unencoded
    assert request("GET", f"{any_server.url}/functions/{made['id']}").json() == made  # at the root too

    listed = request("GET", v2(any_server, f"/functions?name={name.upper()}")).json()
    assert listed["meta"]["total_count"] == 1
    assert listed["data"] == [{"id": made["id"], "name": name, "revision_id": made["revision_id"],
                               "description": "Adds", "instructions": "Add the numbers.",
                               "model": "openai/gpt-4o-mini"}]

    renamed = unique("renamed")
    updated = request("PATCH", v2(any_server, f"/functions/{made['id']}"), {"name": renamed}).json()
    assert updated["name"] == renamed and updated["revision_id"] == made["revision_id"]  # a rename is no revision
    changed = request("PATCH", v2(any_server, f"/functions/{made['id']}"),
                      {"instructions": "Sum them.", "description": None}).json()
    assert changed["instructions"] == "Sum them." and changed["description"] is None
    assert changed["revision_id"] != made["revision_id"] and changed["output_schema"] == SCHEMA_OUT

    assert request("DELETE", v2(any_server, f"/functions/{made['id']}")).status == 204
    assert_error(request("GET", v2(any_server, f"/functions/{made['id']}")), 404)
    assert_error(request("DELETE", v2(any_server, f"/functions/{made['id']}")), 404)
    assert create(any_server, renamed)["id"] != made["id"]  # the name is free again


def test_sorting_and_paging(any_server: ServerProcess, fake: FakeProvider) -> None:
    prefix = unique("sort")
    ids = [create(any_server, f"{prefix}-{letter}")["id"] for letter in "bca"]
    base = v2(any_server, f"/functions?name={prefix}")
    names = [item["name"][-1] for item in request("GET", f"{base}&sort=name").json()["data"]]
    assert names == ["a", "b", "c"]
    assert [item["name"][-1] for item in request("GET", f"{base}&sort=-name").json()["data"]] == ["c", "b", "a"]
    assert [item["id"] for item in request("GET", f"{base}&sort=created_at").json()["data"]] == ids
    assert [item["id"] for item in request("GET", f"{base}&sort=-created_at").json()["data"]] == ids[::-1]
    page = request("GET", f"{base}&sort=name&offset=1&limit=1").json()
    assert page["meta"]["total_count"] == 3 and [item["name"][-1] for item in page["data"]] == ["b"]
    assert len(request("GET", f"{base}&limit=5000").json()["data"]) == 3  # capped, not refused


def test_revisions_and_calls_at_a_revision(any_server: ServerProcess, fake: FakeProvider) -> None:
    made = create(any_server, unique("rev"), output_schema=SCHEMA_OUT)
    fid = made["id"]
    request("PATCH", v2(any_server, f"/functions/{fid}"), {"instructions": "Second prompt."})
    unchanged = request("PATCH", v2(any_server, f"/functions/{fid}"), {"instructions": "Second prompt."}).json()
    revisions = request("GET", v2(any_server, f"/functions/{fid}/revisions")).json()
    assert revisions["meta"]["total_count"] == 2  # the repeated PATCH made none
    newest, first = revisions["data"]
    assert first["id"] == made["revision_id"] and newest["id"] == unchanged["revision_id"]
    assert first["created_at"] and first["configuration"]["invocation.few_shot.count"] == 3
    old = request("GET", v2(any_server, f"/functions/{fid}/revisions/{first['id']}")).json()
    assert old["instructions"] == "Add the numbers." and old["revision_id"] == first["id"] and old["id"] == fid
    one = request("GET", v2(any_server, f"/functions/{fid}/revisions?offset=1&limit=1")).json()
    assert [item["id"] for item in one["data"]] == [first["id"]]

    fake.script("gpt-4o-mini", Behaviour(json={"sum": 3}), Behaviour(json={"sum": 4}))
    now = post(v2(any_server, f"/functions/{fid}/call"), {"input": {"x": 1}}).json()
    assert now["json_payload"] == {"sum": 3} and now["message"] is None and now["cached"] is False
    assert fake.requests[-1].json["messages"][0]["content"].startswith("Second prompt.")
    then = post(v2(any_server, f"/functions/{fid}/call/{first['id']}"), {"input": {"x": 1}}).json()
    assert then["json_payload"] == {"sum": 4} and then["span_id"]
    assert fake.requests[-1].json["messages"][0]["content"].startswith("Add the numbers.")
    after = request("GET", v2(any_server, f"/functions/{fid}/revisions")).json()
    assert after["meta"]["total_count"] == 2  # calling an old revision wrote nothing
    assert request("GET", v2(any_server, f"/functions/{fid}")).json()["revision_id"] == newest["id"]


def test_a_stored_call_uses_the_functions_model_and_the_body_fields(any_server: ServerProcess,
                                                                     fake: FakeProvider) -> None:
    made = create(any_server, unique("model"), model={"name": "anthropic/claude-haiku-4-5",
                                                      "options": {"temperature": 0.25}})
    parent = post(v2(any_server, "/spans"), {"name": "outer"}).json()["id"]
    reply = post(v2(any_server, f"/functions/{made['id']}/call"), {
        "input": "hello", "parent_span_id": parent, "tags": {"team": "a"},
        "examples": [{"input": "hi", "output": "HI", "comment": "shout"}]})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["message"] == fake.default_text("claude-haiku-4-5") and body["json_payload"] is None
    sent = fake.requests[-1]
    assert sent.path.endswith("/v1/messages") and sent.json["temperature"] == 0.25
    assert {"role": "assistant", "content": "HI"} in sent.json["messages"]
    span = request("GET", v2(any_server, f"/spans/{body['span_id']}")).json()
    assert span["parent_id"] == parent and span["name"] == made["name"]


def test_stored_streams_at_the_head_and_at_a_revision(any_server: ServerProcess, fake: FakeProvider) -> None:
    made = create(any_server, unique("stream"), output_schema=SCHEMA_OUT)
    fid = made["id"]
    fake.script("gpt-4o-mini", Behaviour(json={"sum": 7}))
    reply = post(v2(any_server, f"/functions/{fid}/call/stream"), {"input": {"x": 3}})
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(data) for data in sse_events(reply)]
    assert events[0]["span_id"]
    # A stored function's stream is typed `delta: str` by 1.7.2: the number goes as its text.
    deltas = [(e["json_path"], e["delta"]) for e in events[1:] if e.get("chunk_type") == "json"]
    assert deltas == [("response.sum", "7")]
    request("PATCH", v2(any_server, f"/functions/{fid}"), {"output_schema": None, "instructions": "Talk."})
    text = post(v2(any_server, f"/functions/{fid}/call/stream"), {"input": "hi"})
    pieces = [json.loads(data).get("delta") for data in sse_events(text)]
    assert "".join(piece for piece in pieces if piece) == fake.default_text("gpt-4o-mini")
    fake.script("gpt-4o-mini", Behaviour(json={"sum": 8}))
    old = post(v2(any_server, f"/functions/{fid}/call/stream/{made['revision_id']}"), {"input": {"x": 3}})
    assert any(json.loads(data).get("delta") == "8" for data in sse_events(old))


def test_call_by_name_is_the_same_function(any_server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("shared")
    made = create(any_server, name, model="openai/gpt-4o-mini", description="kept",
                  configuration={"invocation.few_shot.count": 1})
    body = {"name": name, "instructions": "Add the numbers.", "model": "openai/gpt-4o-mini", "input": "x"}
    assert post(v2(any_server, "/call"), body).status == 200
    same = request("GET", v2(any_server, f"/functions/{made['id']}")).json()
    assert same["revision_id"] == made["revision_id"]  # the same definition: no new revision
    assert same["description"] == "kept" and same["configuration"]["invocation.few_shot.count"] == 1
    post(v2(any_server, "/call"), {**body, "instructions": "Changed by a call."})
    changed = request("GET", v2(any_server, f"/functions/{made['id']}")).json()
    assert changed["instructions"] == "Changed by a call." and changed["revision_id"] != made["revision_id"]
    assert changed["configuration"]["invocation.few_shot.count"] == 1  # /call leaves the function's setting
    v3 = request("GET", f"{any_server.url}/v3/functions/{name}").json()
    assert v3["source"] == "Changed by a call." and v3["revision_id"] == 2


def test_the_few_shot_count_is_used_by_every_call(any_server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("fewshot")
    made = create(any_server, name, configuration={"invocation.few_shot.count": 1})
    for word in ("apple", "banana", "cherry"):
        entry = {"input": word, "output": word.upper()}
        assert post(v2(any_server, f"/datasets/{made['dataset_id']}"), entry).status == 200

    def shown() -> list[str]:
        return [m["content"] for m in fake.requests[-1].json["messages"] if m["role"] == "assistant"]

    post(v2(any_server, f"/functions/{made['id']}/call"), {"input": "banana"})
    assert shown() == ["BANANA"]
    post(v2(any_server, "/call"), {"name": name, "instructions": "Add the numbers.", "input": "cherry",
                                    "configuration": {"invocation.few_shot.count": 3}})  # ignored on /call
    assert shown() == ["CHERRY"]
    request("PATCH", v2(any_server, f"/functions/{made['id']}"), {"configuration": {"invocation.few_shot.count": 0}})
    post(v2(any_server, f"/functions/{made['id']}/call"), {"input": "banana"})
    assert shown() == []
    request("PATCH", v2(any_server, f"/functions/{made['id']}"), {"configuration": {"invocation.few_shot.count": 3}})
    post(v2(any_server, "/call"), {"name": name, "instructions": "Add the numbers.", "input": "apple"})
    assert sorted(shown()) == ["APPLE", "BANANA", "CHERRY"]


# ---- bad input: a clear 4xx JSON error, never a 500


def test_duplicate_names_are_409(any_server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("dup")
    create(any_server, name)
    assert_error(post(v2(any_server, "/functions"), {"name": name, "instructions": "x"}), 409)
    other = create(any_server, unique("dup-other"))
    assert_error(request("PATCH", v2(any_server, f"/functions/{other['id']}"), {"name": name}), 409)


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"instructions": "x"}, 422, "'name'"),
    ({"name": "x"}, 422, "'instructions'"),
    ({"name": 5, "instructions": "x"}, 422, "'name'"),
    ({"name": "a" * 300, "instructions": "x"}, 422, "256"),
    ({"name": "bad\u0000name", "instructions": "x"}, 422, "printable"),
    ({"name": "x", "instructions": ["x"]}, 422, "'instructions'"),
    ({"name": "x", "instructions": "x", "description": 3}, 422, "'description'"),
    ({"name": "x", "instructions": "x", "output_schema": "nope"}, 422, "output_schema"),
    ({"name": "x", "instructions": "x", "output_schema": {"type": "nonsense"}}, 400, "output_schema"),
    ({"name": "x", "instructions": "x", "model": 5}, 400, "model[0]"),
    ({"name": "x", "instructions": "x", "configuration": []}, 422, "configuration"),
    ({"name": "x", "instructions": "x", "configuration": {"invocation.few_shot.count": -1}}, 422, "few_shot"),
    ({"name": "x", "instructions": "x", "configuration": {"invocation.few_shot.count": 10**6}}, 422, "few_shot"),
    ({"name": "x", "instructions": "x", "configuration": {"beta.invocation.xml_mode.enabled": True}}, 400,
     "needs an output_schema"),
    ({"name": "x", "instructions": "x", "configuration": {"beta.invocation.xml_mode.enabled": 1}}, 422, "boolean"),
])
def test_malformed_create_bodies(any_server: ServerProcess, fake: FakeProvider, body: dict[str, Any], status: int,
                                 needle: str) -> None:
    assert needle in assert_error(post(v2(any_server, "/functions"), body), status)["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b"", b'{"input": ' + b"[" * 200 + b"]" * 200 + b"}",
                                 b'{"input": 1' + b"0" * 30 + b"}", b'{"input": "\\ud800"}'])
def test_malformed_json_is_400(any_server: ServerProcess, fake: FakeProvider, raw: bytes) -> None:
    made = create(any_server, unique("raw"))
    for method, path in (("POST", "/functions"), ("PATCH", f"/functions/{made['id']}"),
                         ("POST", f"/functions/{made['id']}/call"), ("POST", f"/functions/{made['id']}/call/stream"),
                         ("POST", f"/datasets/{made['dataset_id']}")):
        assert_error(request(method, v2(any_server, path), raw=raw), 400)
    assert not fake.requests


def test_a_body_over_the_limit_is_413(server: ServerProcess, fake: FakeProvider) -> None:
    made = create(server, unique("big"))
    huge = b'{"input": "' + b"x" * (11 * 1024 * 1024) + b'"}'
    for path in ("/functions", f"/functions/{made['id']}/call", f"/datasets/{made['dataset_id']}"):
        assert_error(request("POST", v2(server, path), raw=huge), 413)


@pytest.mark.parametrize("function_id", [UNKNOWN, "not-an-id", "%00", "x" * 5000])
def test_unknown_function_ids_are_404(any_server: ServerProcess, fake: FakeProvider, function_id: str) -> None:
    for method, path, body in (
        ("GET", f"/functions/{function_id}", None), ("PATCH", f"/functions/{function_id}", {"name": "n"}),
        ("DELETE", f"/functions/{function_id}", None), ("GET", f"/functions/{function_id}/revisions", None),
        ("GET", f"/functions/{function_id}/revisions/{UNKNOWN}", None),
        ("POST", f"/functions/{function_id}/call", {"input": 1}),
        ("POST", f"/functions/{function_id}/call/stream", {"input": 1}),
        ("POST", f"/functions/{function_id}/call/{UNKNOWN}", {"input": 1}),
        ("POST", f"/functions/{function_id}/call/stream/{UNKNOWN}", {"input": 1}),
    ):
        assert_error(request(method, v2(any_server, path), body), 404)
    assert_error(request("GET", v2(any_server, f"/functions/by-name/{unique('nobody')}")), 404)


def test_unknown_revision_ids_are_404(any_server: ServerProcess, fake: FakeProvider) -> None:
    made = create(any_server, unique("norev"))
    for revision in (UNKNOWN, "7", "%00"):
        assert_error(request("GET", v2(any_server, f"/functions/{made['id']}/revisions/{revision}")), 404)
        assert_error(post(v2(any_server, f"/functions/{made['id']}/call/{revision}"), {"input": 1}), 404)
    other = create(any_server, unique("norev-other"))  # another function's revision
    assert_error(request("GET", v2(any_server, f"/functions/{made['id']}/revisions/{other['revision_id']}")), 404)


def test_another_projects_functions_are_404(any_server: ServerProcess, fake: FakeProvider) -> None:
    theirs = create(any_server, unique("theirs"), key=other_key(any_server))
    fid = theirs["id"]
    for method, path, body in (
        ("GET", f"/functions/{fid}", None), ("PATCH", f"/functions/{fid}", {"instructions": "mine now"}),
        ("DELETE", f"/functions/{fid}", None), ("GET", f"/functions/{fid}/revisions", None),
        ("GET", f"/functions/{fid}/revisions/{theirs['revision_id']}", None),
        ("POST", f"/functions/{fid}/call", {"input": 1}),
        ("POST", f"/functions/{fid}/call/stream/{theirs['revision_id']}", {"input": 1}),
        ("GET", f"/functions/by-name/{theirs['name']}", None),
    ):
        assert_error(request(method, v2(any_server, path), body), 404)
    listed = request("GET", v2(any_server, f"/functions?name={theirs['name']}")).json()
    assert listed == {"meta": {"total_count": 0}, "data": []}
    create(any_server, theirs["name"])  # names are per project


@pytest.mark.parametrize("query", ["offset=-1", "limit=-5", "limit=abc", "offset=1.5", "limit=99999999999",
                                   "sort=size", "sort=", "name=%00"])
def test_bad_list_parameters_are_400(any_server: ServerProcess, fake: FakeProvider, query: str) -> None:
    if query == "sort=":  # empty means the default
        assert request("GET", v2(any_server, f"/functions?{query}")).status == 200
        return
    assert_error(request("GET", v2(any_server, f"/functions?{query}")), 400)
    made = create(any_server, unique("pages"))
    if not query.startswith(("sort", "name")):
        assert_error(request("GET", v2(any_server, f"/functions/{made['id']}/revisions?{query}")), 400)


@pytest.mark.parametrize(("body", "needle"), [
    ({"input": 1, "examples": "x"}, "examples"),
    ({"input": 1, "examples": [{"input": 1}]}, "examples[0]"),
    ({"input": 1, "tags": []}, "'tags'"),
    ({"input": 1, "parent_span_id": 5}, "parent_span_id"),
])
def test_malformed_call_bodies_are_422(any_server: ServerProcess, fake: FakeProvider, body: dict[str, Any],
                                       needle: str) -> None:
    made = create(any_server, unique("badcall"))
    for path in ("/call", "/call/stream", f"/call/{made['revision_id']}"):
        reply = post(v2(any_server, f"/functions/{made['id']}{path}"), body)
        assert needle in assert_error(reply, 422)["detail"]
    assert_error(post(v2(any_server, f"/functions/{made['id']}/call"), {"input": 1, "parent_span_id": UNKNOWN}), 404)


def test_malformed_patch_bodies(any_server: ServerProcess, fake: FakeProvider) -> None:
    made = create(any_server, unique("badpatch"))
    url = v2(any_server, f"/functions/{made['id']}")
    assert_error(request("PATCH", url, {"name": ""}), 422)
    assert_error(request("PATCH", url, {"instructions": "  "}), 422)
    assert_error(request("PATCH", url, {"input_schema": {"$ref": "file:///etc/passwd"}}), 400)
    assert_error(request("PATCH", url, {"configuration": {"invocation.cache.ttl": "soon"}}), 422)
    assert request("GET", url).json() == made  # nothing changed
