"""`$ref` out of the schema's own document: to `file:`, `http:` and `https:`, in every place a schema is
given. Schemas are self-contained: any such reference is refused (4xx) before anything is read or
fetched, so the loopback listener records no connection, the upstream gets nothing, and no word of a
file or a fetched document reaches an answer. Whether a file exists must not change the answer.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile import (
    CHAT,
    CHAT_EP,
    V2_CALL,
    V2_CALL_EP,
    V2_STREAM_EP,
    V3_CALL,
    V3_CALL_EP,
    V3_FN_CALL_EP,
    V3_RUN,
    V3_STREAM_EP,
    Endpoint,
    Probe,
    dumps,
)

pytestmark = pytest.mark.timeout(60)

SERVER_ENV: dict[str, str] = {}
FILE_SECRET = "TOPSECRET-FILE-7c1e"
FETCHED_SECRET = "TOPSECRET-FETCHED-42d9"


class HitListener:
    """A loopback TCP listener that records every connection; to an HTTP request it answers a schema
    holding FETCHED_SECRET, and anything else (a TLS hello) it drops, so no client waits on it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.hits: list[bytes] = []
        threading.Thread(target=self._serve, name="ref-listener", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                self.hits.append(b"")  # recorded before anything is read, so before the client can go on
                connection.settimeout(2)
                try:
                    self.hits[-1] = connection.recv(4096)
                    if self.hits[-1].startswith(b"GET "):
                        body = dumps({"type": "string", "enum": [FETCHED_SECRET], "definitions": {"x": {}}})
                        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                           b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[HitListener]:
    hits = HitListener()
    yield hits
    hits.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a schema file holding FILE_SECRET, the same name in a directory where it does not exist)."""
    root = tmp_path_factory.mktemp("refs")
    (root / "present").mkdir()
    (root / "absent!").mkdir()  # same length as "present", so the two answers can be compared
    secret = root / "present" / "schema.json"
    secret.write_text(dumps({"type": "string", "enum": [FILE_SECRET], "definitions": {"x": {}}}).decode())
    return secret, root / "absent!" / "schema.json"


# Where a schema goes: (endpoint, body with the schema in place)
PLACES: dict[str, tuple[Endpoint, Callable[[Any], Any]]] = {
    "v2-input-schema-validated": (V2_CALL_EP, lambda schema: {
        **V2_CALL, "input": {"a": "x"}, "input_schema": schema,
        "configuration": {"beta.invocation.input_validation.enabled": True}}),
    "v2-input-schema": (V2_CALL_EP, lambda schema: {**V2_CALL, "input_schema": schema}),
    "v2-output-schema": (V2_CALL_EP, lambda schema: {**V2_CALL, "output_schema": schema}),
    "v2-stream-output-schema": (V2_STREAM_EP, lambda schema: {**V2_CALL, "output_schema": schema}),
    "v3-input-schema": (V3_CALL_EP, lambda schema: {**V3_CALL, "input_schema": schema}),
    "v3-output-schema": (V3_CALL_EP, lambda schema: {**V3_CALL, "output_schema": schema}),
    "v3-stream-output-schema": (V3_STREAM_EP, lambda schema: {**V3_CALL, "output_schema": schema}),
    "v3-function-output-schema": (V3_FN_CALL_EP, lambda schema: {**V3_RUN, "output_schema": schema}),
    "v3-tool-parameters": (V3_CALL_EP, lambda schema: {**V3_CALL, "tools": [{"name": "t", "parameters": schema}]}),
    "compat-response-format": (CHAT_EP, lambda schema: {**CHAT, "response_format": {
        "type": "json_schema", "json_schema": {"name": "r", "schema": schema}}}),
    "compat-output-schema": (CHAT_EP, lambda schema: {**CHAT, "output_schema": schema}),
    "compat-tool-parameters": (CHAT_EP, lambda schema: {**CHAT, "tools": [
        {"type": "function", "function": {"name": "t", "parameters": schema}}]}),
}

# How a reference is written: a schema that refers to `url` (a document whose folder is `folder`)
SHAPES: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "ref": lambda url, folder: {"$ref": url},
    "nested-ref": lambda url, folder: {"type": "object", "properties": {"a": {"$ref": url}}},
    "ref-with-pointer": lambda url, folder: {"type": "object", "properties": {"a": {"$ref": f"{url}#/definitions/x"}}},
    "relative-to-id": lambda url, folder: {"$id": f"{folder}/base.json", "type": "object",
                                           "properties": {"a": {"$ref": "schema.json"}}},
    "through-defs": lambda url, folder: {"$defs": {"x": {"$ref": url}}, "type": "object",
                                         "properties": {"a": {"$ref": "#/$defs/x"}}},
    "dynamic-ref": lambda url, folder: {"type": "object", "properties": {"a": {"$dynamicRef": url}}},
}

CASES = [(place, shape) for place in PLACES for shape in SHAPES]


def _send(probe: Probe, place: str, schema: dict[str, Any]) -> Any:
    """The schema is made unique to its case, so no case is answered from a schema cache another one filled."""
    endpoint, body = PLACES[place]
    return probe.send(endpoint.method, endpoint.path, body({**schema, "$comment": f"hostile case {place}"}))


def _assert_secrets_kept(reply: Any) -> None:
    for secret in (FILE_SECRET, FETCHED_SECRET):
        assert secret.encode() not in reply.body, f"the answer gives away {secret}: {reply.body[:400]!r}"


@pytest.mark.parametrize(("place", "shape"), CASES)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_remote_ref_is_refused_before_anything_is_fetched(probe: Probe, listener: HitListener, place: str,
                                                           shape: str, scheme: str) -> None:
    folder = f"{scheme}://127.0.0.1:{listener.port}/schemas"
    hits_before = len(listener.hits)
    reply = _send(probe, place, SHAPES[shape](f"{folder}/schema.json", folder))
    _assert_secrets_kept(reply)
    probe.refused(reply)
    assert len(listener.hits) == hits_before, "the server connected to the $ref URL"


@pytest.mark.parametrize(("place", "shape"), CASES)
def test_a_file_ref_is_refused_without_a_word_about_the_file(probe: Probe, files: tuple[Path, Path], place: str,
                                                            shape: str) -> None:
    present, absent = files
    replies = [_send(probe, place, SHAPES[shape](path.as_uri(), path.parent.as_uri())) for path in (present, absent)]
    for reply in replies:
        _assert_secrets_kept(reply)
        probe.refused(reply)
    # The answer may quote the reference the caller sent; beyond that it must not differ.
    seen_present, seen_absent = (reply.body.decode().replace(present.parent.as_uri(), "<dir>")
                                 .replace(absent.parent.as_uri(), "<dir>") for reply in replies)
    assert seen_present == seen_absent, "the answer tells whether the file exists"


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_remote_meta_schema_is_never_fetched(probe: Probe, listener: HitListener, place: str, scheme: str) -> None:
    """`$schema` is not a reference, but naming a URL there must not make the server fetch it either."""
    hits_before = len(listener.hits)
    schema = {"$schema": f"{scheme}://127.0.0.1:{listener.port}/meta.json", "type": "object"}
    reply = _send(probe, place, schema)
    _assert_secrets_kept(reply)
    assert reply.status < 500, f"answered {reply.status}: {reply.body[:300]!r}"
    assert len(listener.hits) == hits_before, "the server fetched the $schema URL"
    probe.assert_healthy()


LOCAL_REF = {"$defs": {"word": {"type": "string"}}, "type": "object", "properties": {"a": {"$ref": "#/$defs/word"}},
             "required": ["a"], "additionalProperties": False}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_ref_within_the_document_is_accepted(probe: Probe, listener: HitListener, place: str) -> None:
    """The control: refusing the references above must not refuse `#/...` ones."""
    endpoint, body = PLACES[place]
    probe.stored(endpoint, probe.send(endpoint.method, endpoint.path, body(LOCAL_REF)))
