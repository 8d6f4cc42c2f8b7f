"""Schemas are self-contained: a reference outside the document is a 400 before anything is read or fetched.

End to end through every dialect and every place a caller's schema goes (v2 input and output
schemas, v3 calls and function calls, v3 and compat tool parameters, compat response_format),
with a loopback listener that records every connection; then the check function on its own.
"""

from __future__ import annotations

import importlib.util
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskgate.engine.schemas import as_written, checked_schemas, compile_schema, validation_errors
from taskgate.errors import SchemaError
from taskgate.providers.schema_support import fits_openai_strict
from taskgate.schema_bounds import (
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_NODES,
    MAX_SCHEMA_PATTERNS,
    MAX_SCHEMA_REFERENCES,
    schema_refusal,
)
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post

VALIDATE = {"beta.invocation.input_validation.enabled": True}
USER = [{"role": "user", "content": "hi"}]


class RecordingListener:
    """A loopback TCP server that records every connection (TLS or HTTP alike) and answers a GET
    with a schema holding `secret`; a path starting /hang is never answered (until `close`)."""

    def __init__(self, secret: str) -> None:
        self.hits: list[bytes] = []
        self._release = threading.Event()
        listener = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5)
                try:
                    head = self.request.recv(4096)
                except OSError:
                    head = b""
                listener.hits.append(head)
                if b" /hang" in head:
                    listener._release.wait(60)
                    return
                body = f'{{"enum": ["{secret}"]}}'.encode()
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def secret() -> str:
    return f"TOPSECRET{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def listener(secret: str) -> Iterator[RecordingListener]:
    recording = RecordingListener(secret)
    yield recording
    recording.close()


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory, secret: str) -> Path:
    path = tmp_path_factory.mktemp("refs") / "schema.json"
    path.write_text(f'{{"enum": ["{secret}"]}}')
    return path


# ---- where a schema can go: (path, body) for a schema


def v2_input(schema: Any) -> tuple[str, dict[str, Any]]:
    return "/v2/call", {"name": "refs", "input": {"a": 1}, "input_schema": schema, "configuration": VALIDATE}


def v2_output(schema: Any) -> tuple[str, dict[str, Any]]:
    return "/v2/call", {"name": "refs", "input": "x", "output_schema": schema}


def v3_output(schema: Any) -> tuple[str, dict[str, Any]]:
    return "/v3/call", {"name": "refs", "input": "x", "output_schema": schema}


def v3_function_input(schema: Any) -> tuple[str, dict[str, Any]]:
    return "/v3/functions/refs/call", {"input": {"a": 1}, "input_schema": schema}


def v3_tool(schema: Any) -> tuple[str, dict[str, Any]]:
    return "/v3/call", {"name": "refs", "input": "x", "tools": [{"name": "lookup", "parameters": schema}]}


def compat_response_format(schema: Any) -> tuple[str, dict[str, Any]]:
    return "/v3/compat/chat/completions", {
        "model": "openai/gpt-4o-mini", "messages": USER,
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}},
    }


def compat_tool(schema: Any) -> tuple[str, dict[str, Any]]:
    return "/v3/compat/chat/completions", {
        "model": "openai/gpt-4o-mini", "messages": USER,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": schema}}],
    }


PLACES: list[Callable[[Any], tuple[str, dict[str, Any]]]] = [
    v2_input, v2_output, v3_output, v3_function_input, v3_tool, compat_response_format, compat_tool,
]


def send(server: ServerProcess, place: Callable[[Any], tuple[str, dict[str, Any]]], schema: Any,
         timeout: float = 10) -> Reply:
    path, body = place(schema)
    return post(f"{server.url}{path}", body, timeout=timeout)


def assert_refused(reply: Reply, reference: str, secret: str) -> dict[str, Any]:
    assert reply.status == 400, reply.body
    assert secret.encode() not in reply.body
    body = reply.json()
    error = body["error"]
    assert error["code"] == "invalid_schema", body
    assert reference in error["message"]
    assert "only references within the schema itself" in error["message"]
    return body


# ---- end to end


@pytest.mark.parametrize("place", PLACES, ids=lambda place: place.__name__)
def test_file_references_are_refused_without_reading_or_revealing_the_file(
        server: ServerProcess, fake: Any, place: Any, secret: str, secret_file: Path) -> None:
    missing = secret_file.with_name(f"missing-{uuid.uuid4().hex}.json")
    existing_ref, missing_ref = secret_file.as_uri(), missing.as_uri()
    existing = assert_refused(send(server, place, {"$ref": existing_ref}), existing_ref, secret)
    absent = assert_refused(send(server, place, {"$ref": missing_ref}), missing_ref, secret)
    # Whether the file exists changes nothing in the answer but the path the caller sent.
    assert str(existing).replace(existing_ref, "REF") == str(absent).replace(missing_ref, "REF")
    assert fake.requests == []


@pytest.mark.parametrize("place", PLACES, ids=lambda place: place.__name__)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_url_references_are_refused_without_a_connection(
        server: ServerProcess, fake: Any, listener: RecordingListener, place: Any, scheme: str, secret: str) -> None:
    before = len(listener.hits)
    reference = listener.url(scheme, f"/{place.__name__}.json")
    assert_refused(send(server, place, {"$ref": reference}), reference, secret)
    assert len(listener.hits) == before
    assert fake.requests == []


def hidden_references(url: str) -> list[dict[str, Any]]:
    """Schemas that reach `url` somewhere other than a top-level `$ref`."""
    return [
        {"type": "object", "properties": {"a": {"items": {"anyOf": [{"type": "null"}, {"$ref": url}]}}}},
        {"$defs": {"x": {"$ref": url}}, "$ref": "#/$defs/x"},
        {"$ref": "#/const", "const": {"$ref": url}},  # a pointer can make any value a schema
        {"$dynamicRef": url},
        {"$id": url.rsplit("/", 1)[0] + "/", "$ref": "other.json"},  # relative to an outside base
        {"allOf": [{"prefixItems": [{"not": {"$ref": url}}]}]},
    ]


@pytest.mark.parametrize("index", range(len(hidden_references("http://x/y"))))
def test_references_hidden_anywhere_in_a_schema_are_refused(
        server: ServerProcess, listener: RecordingListener, index: int, secret: str) -> None:
    before = len(listener.hits)
    url = listener.url("http", "/hidden/s.json")
    schema = hidden_references(url)[index]
    for place in (v2_input, compat_response_format):
        reply = send(server, place, schema)
        assert reply.status == 400, reply.body
        assert reply.json()["error"]["code"] == "invalid_schema"
        assert secret.encode() not in reply.body
    assert len(listener.hits) == before


def test_references_within_the_document_still_work(
        server: ServerProcess, fake: Any, listener: RecordingListener) -> None:
    before = len(listener.hits)
    person = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    output_schema = {
        "$id": listener.url("http", "/root.json"),  # an outside base changes nothing for '#' references
        "$defs": {"Person": person},
        "type": "object",
        "properties": {"people": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "minItems": 1}},
        "required": ["people"],
    }
    schema = {**output_schema, "properties": {**output_schema["properties"], "tag": {"$ref": "#named"}},
              "$defs": {"Person": person, "Named": {"$anchor": "named", "type": "string"}}}
    reply = post(f"{server.url}/v2/call", {"name": "local-refs", "input": {"people": [{"name": "Ada"}], "tag": "t"},
                                           "input_schema": schema, "output_schema": output_schema,
                                           "configuration": VALIDATE})
    assert reply.status == 200, reply.body
    assert reply.json()["json_payload"]["people"][0]["name"]
    invalid = post(f"{server.url}/v2/call", {"name": "local-refs", "input": {"people": [{"name": 5}]},
                                             "input_schema": schema, "configuration": VALIDATE})
    assert invalid.status == 400 and "people[0].name" in invalid.json()["error"]["message"]
    assert len(listener.hits) == before


def test_a_url_that_never_answers_does_not_freeze_the_server(
        server: ServerProcess, listener: RecordingListener, secret: str) -> None:
    """It used to be fetched on the event loop (30 s with /health frozen), again on every repeat."""
    before = len(listener.hits)
    reference = listener.url("http", f"/hang/{uuid.uuid4().hex}.json")
    answers: list[Reply] = []
    caller = threading.Thread(target=lambda: answers.append(send(server, v2_output, {"$ref": reference}, timeout=5)))
    caller.start()
    deadline = time.monotonic() + 3
    while not answers and len(listener.hits) == before and time.monotonic() < deadline:
        time.sleep(0.01)  # until it was answered, or (before the fix) the server is fetching
    started = time.monotonic()
    health = get(f"{server.url}/health", timeout=5)
    assert health.status == 200 and time.monotonic() - started < 2
    caller.join(10)
    assert_refused(answers[0], reference, secret)
    started = time.monotonic()
    for _ in range(20):  # refused once, remembered as refused
        assert_refused(send(server, v2_output, {"$ref": reference}, timeout=5), reference, secret)
    assert time.monotonic() - started < 5
    assert len(listener.hits) == before


def test_a_pattern_with_runaway_backtracking_is_cut_short(server: ServerProcess) -> None:
    """A back-reference makes fancy-regex backtrack: 1,000 strings took about 15 s at its default limit."""
    schema = {"type": "array", "items": {"type": "string", "pattern": r"^(a|a)*\1b"}}
    started = time.monotonic()
    reply = post(f"{server.url}/v2/call", {"name": "backtrack", "input": ["a" * 30] * 1000, "input_schema": schema,
                                           "configuration": VALIDATE}, timeout=5)
    assert time.monotonic() - started < 3
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_input"


def test_a_pattern_too_large_to_compile_cheaply_is_refused(server: ServerProcess) -> None:
    """Its compiled form was 10 MB, and matching it took seconds per 100 KB of input."""
    schema = {"type": "object", "properties": {"text": {"type": "string", "pattern": "[^x]{3000}y"}}}
    started = time.monotonic()
    reply = post(f"{server.url}/v2/call", {"name": "big-regex", "input": {"text": "ab" * 500_000},
                                           "input_schema": schema, "configuration": VALIDATE}, timeout=10)
    assert time.monotonic() - started < 3
    assert reply.status == 400, reply.body
    message = reply.json()["error"]["message"]
    assert reply.json()["error"]["code"] == "invalid_schema" and "$.properties.text.pattern" in message
    assert "compiled form fits in 256 KiB" in message


# ---- the check itself


def refused(schema: Any) -> str:
    with pytest.raises(SchemaError) as caught:
        compile_schema(schema, "output_schema")
    return caught.value.detail


@pytest.mark.parametrize("reference", [
    "other.json#/x", "other.json", "/etc/passwd", "file:///etc/passwd", "http://127.0.0.1:9/x",
    "https://json-schema.org/draft/2020-12/schema", "urn:uuid:1", " #/leading-space", "//host/x",
])
def test_every_reference_not_starting_with_hash_is_refused(reference: str) -> None:
    for keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
        message = refused({"type": "object", "properties": {"a": {keyword: reference}}})
        assert f"has {keyword} '{reference}' at $.properties.a.{keyword}" in message


def test_references_are_found_in_arrays_items_and_combinators() -> None:
    bad = {"$ref": "x.json"}
    for schema in (
        {"items": bad}, {"prefixItems": [{}, bad]}, {"anyOf": [{}, {"oneOf": [bad]}]},
        {"$defs": {"a": {"$defs": {"b": bad}}}}, {"enum": [bad]}, {"if": {"then": {"else": bad}}},
        [{"nested": [[bad]]}],
    ):
        assert schema_refusal(schema) is not None, schema


@pytest.mark.parametrize("schema", [
    {"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"},
    {"$ref": "#"},
    {"$defs": {"a": {"$anchor": "here", "type": "string"}}, "$ref": "#here"},
    {"$id": "https://example.com/root.json", "$defs": {"a": {"type": "integer"}}, "$ref": "#/$defs/a"},
    {"$defs": {"a": {"$id": "file:///etc/", "$ref": "#/$defs/b", "$defs": {"b": {"type": "string"}}}}},
    {"$dynamicAnchor": "node", "type": "object", "properties": {"next": {"$dynamicRef": "#node"}}},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"},
    {"type": "object", "properties": {"$ref": {"type": "string"}, "$id": {"type": "string"}}},
    True,
])
def test_self_contained_schemas_compile(schema: Any) -> None:
    assert schema_refusal(schema) is None
    compile_schema(schema, "output_schema")


def test_a_reference_that_is_not_a_string_is_a_compile_error_not_a_crash() -> None:
    assert schema_refusal({"$ref": 5}) is None
    assert "does not compile: at $.$ref" in refused({"$ref": 5})
    assert "does not compile" in refused({"$ref": ["#"]})


def test_an_outside_base_cannot_smuggle_a_fetch_past_the_offline_compiler() -> None:
    """A pointer into a `const` makes a schema out of data whose `$id` is outside: resolving its
    `#` then needs that outside resource, and the compiler refuses to fetch it."""
    schema = {"$ref": "#/const", "const": {"$id": "http://127.0.0.1:9/base.json", "$ref": "#/defs/x"}}
    assert schema_refusal(schema) is None
    assert "does not compile" in refused(schema)


def test_meta_schema_and_vocabulary_urls_are_never_fetched(listener: RecordingListener) -> None:
    before = len(listener.hits)
    for scheme in ("http", "https"):
        compile_schema({"$schema": listener.url(scheme, "/meta.json"), "type": "string"}, "output_schema")
        compile_schema({"$vocabulary": {listener.url(scheme, "/vocab"): True}, "type": "string"}, "output_schema")
    assert len(listener.hits) == before


def test_size_limits() -> None:
    deep: Any = {"type": "string"}
    for _ in range(MAX_SCHEMA_DEPTH):
        deep = {"items": deep}
    assert f"nested more than {MAX_SCHEMA_DEPTH} levels deep (at $" in refused(deep)
    assert f"more than {MAX_SCHEMA_NODES} objects" in refused({"anyOf": [{} for _ in range(MAX_SCHEMA_NODES)]})
    many_refs = {"$defs": {"a": {}}, "anyOf": [{"$ref": "#/$defs/a"}] * (MAX_SCHEMA_REFERENCES + 1)}
    assert f"the limit is {MAX_SCHEMA_REFERENCES}" in refused(many_refs)
    patterns = {"properties": {str(n): {"pattern": f"^{n}$"} for n in range(MAX_SCHEMA_PATTERNS + 1)}}
    assert f"distinct patterns; the limit is {MAX_SCHEMA_PATTERNS}" in refused(patterns)
    same_pattern = {"properties": {str(n): {"pattern": "^a$"} for n in range(100)}}
    compile_schema(same_pattern, "output_schema")  # equal patterns are compiled once, and counted once
    assert "bytes of JSON; the limit is" in refused({"description": "x" * 300_000})


def test_refusals_are_cached_like_validators() -> None:
    compiled = compile_schema({"type": "object", "required": ["a"]}, "output_schema")
    assert compile_schema({"type": "object", "required": ["a"]}, "input_schema") is compiled  # equal: a look-up
    # Known as written: key order is part of a schema's meaning (its properties' order); another is another entry
    assert compile_schema({"required": ["a"], "type": "object"}, "input_schema") is not compiled
    for schema, why in (({"$ref": "cached.json"}, "only references within"), ({"type": "strin"}, "does not compile")):
        assert why in refused(schema)
        assert why in str(checked_schemas.get(as_written(schema)))  # a repeat is a look-up
        assert refused(schema) == refused(schema)


def test_validation_of_a_value_too_deep_to_convert_is_an_error_not_a_crash() -> None:
    value: Any = 1
    for _ in range(300):
        value = [value]
    errors = validation_errors(compile_schema({"type": "array", "items": {"type": "string"}}, "s").validator, value)
    assert errors and "could not be checked" in errors[0]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_the_local_grammar_converter_is_never_given_an_outside_reference(listener: RecordingListener) -> None:
    """llama.cpp's converter fetches `https:` references when allowed to; it never gets the chance."""
    from taskgate.providers.local.grammar import GrammarCache, GrammarUnavailable

    before = len(listener.hits)
    cache = GrammarCache()
    schema = {"type": "object", "properties": {"a": {"$ref": listener.url("https", "/grammar.json")}}}
    for _ in range(2):  # the refusal is cached too
        with pytest.raises(GrammarUnavailable, match="only references within the schema itself"):
            cache.get(schema)
    assert len(cache) == 1 and len(listener.hits) == before
    assert "root ::=" in cache.get({"$defs": {"a": {"type": "integer"}}, "$ref": "#/$defs/a"})


def test_strict_mode_is_never_asked_for_a_schema_with_an_outside_reference() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/b"}}, "required": ["a"],
              "additionalProperties": False, "$defs": {"b": {"type": "string"}}}
    assert fits_openai_strict(schema)
    schema["properties"]["a"]["$ref"] = "https://example.com/b.json"
    assert not fits_openai_strict(schema)


def test_the_listener_records_connections(listener: RecordingListener) -> None:
    """The hit counter the tests above rely on does see a connection."""
    before = len(listener.hits)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as conn:
        conn.sendall(b"GET /probe HTTP/1.0\r\n\r\n")
        assert b"200 OK" in conn.recv(4096)
    assert len(listener.hits) == before + 1
