"""The v3 wire over raw HTTP against `taskgate serve`: exact SSE framing, routing of names with `/`,
every 4xx path, the v2 span endpoints, and what needs no key."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.fakes.provider import Behaviour, FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.http_client import Reply, request

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fn_url(server: ServerProcess, name: str, suffix: str = "") -> str:
    return f"{server.url}/v3/functions/{quote(name, safe='')}{suffix}"


def sse_blocks(reply: Reply) -> list[list[str]]:
    """The stream as blank-line separated blocks of lines, checking the framing on the way."""
    text = reply.body.decode()
    assert text.endswith("data: [DONE]\n\n")
    return [block.split("\n") for block in text.split("\n\n") if block]


def assert_error(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["detail"] and body["error"]["message"] == body["detail"] and body["type"]
    if code is not None:
        assert body["error"]["code"] == code
    return body  # type: ignore[no-any-return]


def test_names_with_slashes_and_spaces(server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("team a/sub/fn")
    reply = request("POST", fn_url(server, name, "/call"), {"input": "hi", "instructions": "Greet."})
    assert reply.status == 200 and reply.json()["meta"]["function_name"] == name
    details = request("GET", fn_url(server, name)).json()
    assert details["name"] == name and details["source"] == "Greet."
    assert request("GET", fn_url(server, name, "/revisions/1")).json()["source"] == "Greet."


def test_call_by_body_and_its_stream_flag(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"a": "x"}), Behaviour(text="streamed"))
    name = unique("by-body")
    plain = request("POST", f"{server.url}/v3/call", {"name": name, "input": {"q": 1}, "output_schema": SCHEMA})
    assert plain.status == 200 and plain.json()["data"] == {"a": "x"}
    streamed = request("POST", f"{server.url}/v3/call", {"name": name, "input": "x", "stream": True})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert sse_blocks(streamed)[-2][0] == "event: complete"
    assert_error(request("POST", f"{server.url}/v3/call", {"input": "x"}), 400, "bad_request")


def test_stream_framing(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="one two\nthree"))
    reply = request("POST", f"{server.url}/v3/call/stream", {"name": unique("framing"), "input": "x"})
    assert reply.status == 200
    blocks = sse_blocks(reply)
    *chunks, complete, done = blocks
    for block in chunks:
        (line,) = block  # one single-line `data:` per event
        assert line.startswith("data: ")
    parsed = [json.loads(block[0][6:]) for block in chunks]
    assert [chunk["type"] for chunk in parsed] == ["content"] * (len(parsed) - 1) + ["done"]
    assert "".join(chunk["delta"] for chunk in parsed[:-1]) == "one two\nthree"
    assert complete[0] == "event: complete" and len(complete) == 2 and complete[1].startswith("data: ")
    assert json.loads(complete[1][6:])["data"] == "one two\nthree"
    assert done == ["data: [DONE]"]


def test_upstream_failure_mid_stream_is_an_error_chunk(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="a b c d e f g", fail_after=3))
    reply = request("POST", fn_url(server, unique("failing"), "/stream"), {"input": "x"})
    assert reply.status == 200
    blocks = sse_blocks(reply)
    error = json.loads(blocks[-2][0][6:])
    assert error["type"] == "error" and error["error"]
    assert not any(block[0] == "event: complete" for block in blocks)


def test_errors_before_a_stream_are_plain_http_errors(server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("early")
    assert_error(request("POST", fn_url(server, name, "/stream"), {"input": "x", "parent_span_id": "nope"}), 404)
    assert_error(request("POST", fn_url(server, name, "/stream"), {"input": "x", "model": "nowhere"}), 400)
    assert_error(request("POST", fn_url(server, name, "/stream"), {"input": "x", "output_schema": {"type": 5}}),
                 400)


def test_bad_requests(server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("bad")
    assert request("POST", fn_url(server, name, "/call"), {"input": "x"}).status == 200
    cases = [
        ("POST", fn_url(server, name, "/call"), None, b"{not json"),
        ("POST", fn_url(server, name, "/call"), None, b"[1, 2]"),
        ("POST", fn_url(server, name, "/call"), {"input": "x", "tools": [{"parameters": {}}]}, None),
        ("PUT", fn_url(server, name), {"src": "x"}, None),
        ("GET", fn_url(server, name, "/revisions/abc"), None, None),
        ("POST", fn_url(server, name, "/examples"), {"input": "only input"}, None),
        ("POST", fn_url(server, name, "/examples/batch"), {"input": "x", "output": "y"}, None),
        ("POST", fn_url(server, name, "/examples/batch"), [{"input": "x", "output": "y", "tag": 3}], None),
        ("GET", fn_url(server, name, "/examples?limit=500"), None, None),
        ("POST", f"{server.url}/v3/spans", {"type": "no name"}, None),
        ("POST", f"{server.url}/v3/spans", {"name": "s", "start_time": "last week"}, None),
        ("GET", f"{server.url}/v3/traces?limit=0", None, None),
        ("GET", f"{server.url}/v3/models?deprecated=maybe", None, None),
        ("GET", f"{server.url}/v3/models?sort=colour", None, None),
    ]
    for method, url, body, raw in cases:
        assert_error(request(method, url, body, raw=raw), 400)


def test_not_found_and_method_not_allowed(server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("nf")
    request("POST", fn_url(server, name, "/examples"), {"input": "x", "output": "y"})
    for method, url in [
        ("GET", fn_url(server, name + "-missing")),
        ("DELETE", fn_url(server, name + "-missing")),
        ("GET", fn_url(server, name + "-missing", "/examples")),
        ("GET", fn_url(server, name, "/revisions/9")),
        ("POST", fn_url(server, name, "/revisions/9/revert")),
        ("DELETE", fn_url(server, name, "/examples/" + str(uuid.uuid4()))),
        ("GET", f"{server.url}/v3/spans/{uuid.uuid4()}"),
        ("PATCH", f"{server.url}/v3/spans/{uuid.uuid4()}"),
        ("DELETE", f"{server.url}/v3/spans/{uuid.uuid4()}"),
        ("GET", f"{server.url}/v3/traces/{uuid.uuid4()}"),
        ("DELETE", f"{server.url}/v3/traces/{uuid.uuid4()}"),
    ]:
        assert_error(request(method, url, {} if method == "PATCH" else None), 404, "not_found")
    assert_error(request("POST", f"{server.url}/v3/spans", {"name": "s", "parent_id": "missing"}), 404)
    assert_error(request("POST", fn_url(server, name), {"input": "x"}), 405, "method_not_allowed")


def test_examples_can_seed_a_function_before_its_first_call(server: ServerProcess, fake: FakeProvider) -> None:
    name = unique("seeded")
    created = request("POST", fn_url(server, name, "/examples/batch"), [{"input": "a", "output": "b"}])
    assert created.status == 200 and created.json()[0]["uuid"]
    details = request("GET", fn_url(server, name)).json()
    assert details["source"] == "You are a helpful assistant"
    request("POST", fn_url(server, name, "/call"), {"input": "a"})
    sent = fake.requests[-1].json["messages"]
    assert sent[1:3] == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]


def test_auth(server: ServerProcess, fake: FakeProvider) -> None:
    for path in ("/health", "/v3/openapi.json", "/v3/openapi.yaml", "/v3/models"):
        assert request("GET", server.url + path, key=None).status == 200
    assert_error(request("GET", f"{server.url}/v3/functions", key=None), 401, "unauthorized")
    assert_error(request("POST", fn_url(server, "x", "/call"), {"input": 1}, key="wrong"), 401)
    assert_error(request("POST", f"{server.url}/v3/spans", {"name": "x"}, key=None), 401)


def test_openapi_matches_what_is_served(server: ServerProcess, fake: FakeProvider) -> None:
    doc = request("GET", f"{server.url}/v3/openapi.json", key=None).json()
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"]
    for path, methods in doc["paths"].items():
        concrete = path.replace("{name}", "some/fn").replace("{revision_id}", "1")
        for method in methods:
            status = request(method.upper(), server.url + concrete.format(id="x", uuid="x"),
                             {} if method in ("post", "put", "patch") else None, key=None).status
            expected = 200 if not methods[method]["security"] else 401
            assert status in (expected, 400), (method, path, status)


def test_openapi_yaml_is_the_same_document(server: ServerProcess, fake: FakeProvider) -> None:
    reply = request("GET", f"{server.url}/v3/openapi.yaml", key=None)
    assert reply.status == 200 and reply.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(reply.body) == request("GET", f"{server.url}/v3/openapi.json", key=None).json()


def test_models_filters_and_pages(server: ServerProcess, fake: FakeProvider) -> None:
    everything = request("GET", f"{server.url}/v3/models?limit=1000", key=None).json()
    providers = {m["provider"] for m in everything["models"]}
    assert providers - {"local"} == {"openai", "anthropic"}  # the two with keys configured; no price table for others
    # local: only the offline embedding model, listed where its weights are installed
    assert {m["id"] for m in everything["models"] if m["provider"] == "local"} <= {"local/all-minilm-l6-v2"}
    assert everything["total"] == len(everything["models"])
    page = request("GET", f"{server.url}/v3/models?provider=anthropic&limit=2&offset=1&sort=cost&order=desc",
                   key=None).json()
    assert page["limit"] == 2 and page["offset"] == 1 and len(page["models"]) == 2
    assert page["models"][0]["cost"] >= page["models"][1]["cost"]
    found = request("GET", f"{server.url}/v3/models?q=GPT-4O-MINI", key=None).json()["models"]
    assert found and all("gpt-4o-mini" in m["id"] for m in found)


def test_v2_spans_with_a_client_chosen_id(server: ServerProcess, fake: FakeProvider) -> None:
    span_id = str(uuid.uuid4())
    created = request("POST", f"{server.url}/v2/spans", {"name": "v2 root", "id": span_id, "meta": {"a": 1},
                                                           "score": 4, "input": {"x": 1}})
    assert created.status == 200
    body = created.json()
    assert body["id"] == span_id and body["trace_id"] and body["score"] == 4 and body["meta"] == {"a": 1}
    assert_error(request("POST", f"{server.url}/spans", {"name": "again", "id": span_id}), 409)
    child = request("POST", f"{server.url}/spans", {"name": "v2 child", "parent_id": span_id}).json()
    assert child["trace_id"] == body["trace_id"] and child["parent_id"] == span_id
    call = request("POST", fn_url(server, unique("under-v2"), "/call"), {"input": "x", "parent_span_id": span_id})
    assert call.json()["meta"]["trace_uuid"] == body["trace_id"]
    patched = request("PATCH", f"{server.url}/v2/spans/{span_id}", {"output": "done", "score": 5}).json()
    assert patched["output"] == "done" and patched["score"] == 5 and patched["input"] == {"x": 1}
    assert request("GET", f"{server.url}/spans/{span_id}").json()["output"] == "done"
    trace = request("GET", f"{server.url}/v3/traces/{body['trace_id']}").json()
    assert trace["span_count"] == 3 and trace["data"]["span_count"] == 3 and trace["name"] == "v2 root"
    assert request("DELETE", f"{server.url}/v2/spans/{span_id}").status == 204
    assert_error(request("GET", f"{server.url}/v2/spans/{span_id}"), 404)


@pytest.mark.parametrize("field, value", [("id", "a\x00b"), ("id", ""), ("id", "x" * 256),
                                          ("trace_id", "line\nbreak"), ("id", 5)])
def test_a_client_chosen_span_id_must_be_printable_and_short(server: ServerProcess, fake: FakeProvider,
                                                             field: str, value: object) -> None:
    for path in ("/v3/spans", "/v2/spans"):
        assert_error(request("POST", server.url + path, {"name": "bad id", field: value}), 400)


def test_span_patch_and_error_status(server: ServerProcess, fake: FakeProvider) -> None:
    created = request("POST", f"{server.url}/v3/spans", {"name": "work", "tags": {"a": 1}}).json()["data"]
    patched = request("PATCH", f"{server.url}/v3/spans/{created['id']}",
                      {"error": "it broke", "metadata": {"m": 2}, "name": "renamed"}).json()
    assert patched["data"] == {k: v for k, v in patched.items() if k != "data"}
    assert patched["status"] == "error" and patched["error"] == "it broke" and patched["name"] == "renamed"
    assert patched["metadata"] == {"m": 2} and patched["tags"] == {"a": 1} and patched["meta"] == {}


def test_traces_list_filters_and_pages(server: ServerProcess, fake: FakeProvider) -> None:
    tag = uuid.uuid4().hex[:8]
    for index in range(3):
        request("POST", f"{server.url}/v3/spans", {"name": f"Batch-{tag}-{index}"})
    listed = request("GET", f"{server.url}/v3/traces?name=batch-{tag}&limit=2").json()
    assert listed["meta"]["total"] == 3 and listed["meta"]["total_count"] == 3 and len(listed["data"]) == 2
    rest = request("GET", f"{server.url}/v3/traces?name=BATCH-{tag}&limit=2&offset=2").json()
    assert len(rest["data"]) == 1
    names = {item["name"] for item in listed["data"] + rest["data"]}
    assert names == {f"Batch-{tag}-{index}" for index in range(3)}


@pytest.mark.sdk
def test_a_broken_database_is_a_500(fake: FakeProvider, tmp_path: Path, sdk_venv: SdkVenvs) -> None:
    """A real 500: someone drops a table under the running server (no fault is faked in code)."""
    with ServerProcess(fake, tmp_path / "broken") as server:
        assert request("GET", f"{server.url}/v3/functions").status == 200
        with contextlib.closing(sqlite3.connect(server.data_dir / "taskgate.db")) as db:
            db.execute("DROP TABLE function_revisions")
            db.execute("DROP TABLE functions")
            db.commit()
        assert_error(request("GET", f"{server.url}/v3/functions"), 500, "internal_error")
        proc = sdk_venv.run("opperai-2.1.1", "v3_client.py", json.dumps({"scenario": "internal_error"}),
                            server=server)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["class"] == "InternalServerError"
