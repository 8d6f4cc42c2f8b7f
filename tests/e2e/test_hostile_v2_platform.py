"""Hostile bodies on the v2 function and dataset endpoints that read one, by the rule of
`tests/hostile.py`: malformed, of the wrong kind, deep or too large, each is a 4xx JSON error that
reaches no upstream and leaves the server healthy; the plain body is accepted and can be read back.

Their paths hold ids the server makes, so the endpoints are built once the module's server is
seeded (its FUNCTION, whose dataset holds the seeded example), rather than in the shared table.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.e2e.test_hostile_bodies import DEPTHS, MALFORMED
from tests.hostile import (
    FUNCTION,
    Endpoint,
    HostileServer,
    Probe,
    RawConnection,
    deep_array,
    dumps,
    raw_request,
    with_extra,
)
from tests.http_client import Reply, sse_events

pytestmark = pytest.mark.timeout(60)

BODY_LIMIT = 256 * 1024
SERVER_ENV = {"TASKGATE_MAX_BODY_BYTES": str(BODY_LIMIT)}
NAMES = ("v2-function-create", "v2-function-update", "v2-function-call", "v2-function-stream",
         "v2-function-call-revision", "v2-dataset-entry", "v2-dataset-entry-update", "v2-knowledge-create",
         "v2-knowledge-add", "v2-knowledge-query")
KNOWLEDGE = {"name": "hostile-kb", "embedding_model": "openai/text-embedding-3-small"}


def _span_stored(probe: Probe, reply: Reply) -> None:
    probe.readable(f"/v2/spans/{reply.json()['span_id']}")


def _stream_stored(probe: Probe, reply: Reply) -> None:
    probe.readable(f"/v2/spans/{json.loads(sse_events(reply)[0])['span_id']}")


def _function_stored(probe: Probe, reply: Reply) -> None:
    assert probe.readable(f"/v2/functions/{reply.json()['id']}") == reply.json()


def _entry_stored(dataset_id: str) -> Any:
    def read_back(probe: Probe, reply: Reply) -> None:
        assert probe.readable(f"/v2/datasets/{dataset_id}/entries/{reply.json()['id']}") == reply.json()
    return read_back


def _knowledge_stored(probe: Probe, reply: Reply) -> None:
    assert probe.readable(f"/v2/knowledge/{reply.json()['id']}")["name"] == reply.json()["name"]


def _document_stored(base_id: str) -> Any:
    def read_back(probe: Probe, reply: Reply) -> None:
        assert probe.readable(f"/v2/knowledge/{base_id}/documents/{reply.json()['key']}")["id"] == reply.json()["id"]
    return read_back


def _query_span_stored(probe: Probe, reply: Reply) -> None:
    assert isinstance(reply.json(), list)
    probe.readable(f"/v3/spans/{reply.headers['x-opper-span-id']}")


@pytest.fixture(scope="module")
def endpoints(hostile_server: HostileServer, fake_provider: Any) -> dict[str, Endpoint]:
    """The endpoints, on the seeded function, its current revision and its dataset's seeded entry."""
    probe = Probe(hostile_server.process, fake_provider, hostile_server.tap)
    function = probe.readable(f"/v2/functions/by-name/{FUNCTION}")
    fid, did = function["id"], function["dataset_id"]
    entry = probe.readable(f"/v2/datasets/{did}/entries")["data"][0]["id"]
    made = probe.send("POST", "/v2/knowledge", {**KNOWLEDGE, "name": f"hostile-{uuid.uuid4().hex[:8]}"})
    assert made.status == 200, made.body
    kb = made.json()["id"]
    return {endpoint.name: endpoint for endpoint in (
        Endpoint("v2-function-create", "POST", "/v2/functions", {"name": "hostile-v2-fn", "instructions": "Hi."},
                 _function_stored),
        Endpoint("v2-function-update", "PATCH", f"/v2/functions/{fid}", {"description": "patched"}, _function_stored),
        Endpoint("v2-function-call", "POST", f"/v2/functions/{fid}/call", {"input": "hello"}, _span_stored),
        Endpoint("v2-function-stream", "POST", f"/v2/functions/{fid}/call/stream", {"input": "hello"},
                 _stream_stored),
        Endpoint("v2-function-call-revision", "POST", f"/v2/functions/{fid}/call/{function['revision_id']}",
                 {"input": "hello"}, _span_stored),
        Endpoint("v2-dataset-entry", "POST", f"/v2/datasets/{did}", {"input": "q", "output": "a"},
                 _entry_stored(did)),
        Endpoint("v2-dataset-entry-update", "PATCH", f"/v2/datasets/{did}/entries/{entry}", {"comment": "c"},
                 _entry_stored(did)),
        Endpoint("v2-knowledge-create", "POST", "/v2/knowledge", KNOWLEDGE, _knowledge_stored),
        Endpoint("v2-knowledge-add", "POST", f"/v2/knowledge/{kb}/add", {"content": "hello world", "key": "doc"},
                 _document_stored(kb)),
        Endpoint("v2-knowledge-query", "POST", f"/v2/knowledge/{kb}/query", {"query": "hello"}, _query_span_stored),
    )}


@pytest.mark.parametrize("name", NAMES)
def test_each_endpoint_accepts_its_plain_body(probe: Probe, endpoints: dict[str, Endpoint], name: str) -> None:
    endpoint = endpoints[name]
    body = endpoint.body
    if name in ("v2-function-create", "v2-knowledge-create"):  # a name can be created once
        body = {**body, "name": f"hostile-{uuid.uuid4().hex[:8]}"}
    probe.stored(endpoint, probe.send(endpoint.method, endpoint.path, body))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_body_is_refused(probe: Probe, endpoints: dict[str, Endpoint], name: str, case: str) -> None:
    endpoint = endpoints[name]
    probe.refused(probe.send(endpoint.method, endpoint.path, raw=MALFORMED[case](endpoint)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", DEPTHS)
def test_a_deep_unknown_member_is_refused(probe: Probe, endpoints: dict[str, Endpoint], name: str,
                                         depth: int) -> None:
    endpoint = endpoints[name]
    probe.refused(probe.send(endpoint.method, endpoint.path, raw=with_extra(endpoint, deep_array(depth))))


@pytest.mark.parametrize("name", NAMES)
def test_a_body_over_the_limit_is_413(probe: Probe, endpoints: dict[str, Endpoint], name: str) -> None:
    endpoint = endpoints[name]
    with RawConnection(probe.server.port) as connection:
        connection.send(raw_request(endpoint.method, endpoint.path,
                                    with_extra(endpoint, dumps("x" * (BODY_LIMIT + 1024)))))
        exchange = connection.exchange(1)
    assert exchange.replies, f"no answer to an oversized body (closed: {exchange.closed})"
    probe.refused(exchange.replies[0], statuses={413})


@pytest.mark.parametrize(("name", "field", "value"), [
    ("v2-function-create", "instructions", {"x": 1}),
    ("v2-function-create", "name", "x" * 10_000),
    ("v2-function-create", "input_schema", {"$ref": "http://127.0.0.1:1/schema.json"}),
    ("v2-function-update", "model", [{"name": "openai/gpt-4o-mini", "extra_headers": {"Authorization": "x"}}]),
    ("v2-function-update", "configuration", {"invocation.cache.ttl": 10**12}),
    ("v2-function-call", "examples", [{"input": 1}]),
    ("v2-function-call", "parent_span_id", "x" * 300),
    ("v2-function-stream", "tags", "nope"),
    ("v2-dataset-entry", "comment", ["x"]),
    ("v2-dataset-entry-update", "comment", 7),
    ("v2-knowledge-create", "name", "x" * 10_000),
    ("v2-knowledge-create", "embedding_model", {"name": "openai/x"}),
    ("v2-knowledge-add", "metadata", [1]),
    ("v2-knowledge-add", "content", ""),
    ("v2-knowledge-add", "configuration", {"text_processing": {"chunk_size": 10**12}}),
    ("v2-knowledge-query", "top_k", 10_000),
    ("v2-knowledge-query", "filters", [{"field": "a", "operation": "~", "value": 1}]),
    ("v2-knowledge-query", "parent_span_id", "x" * 300),
])
def test_a_wrong_value_is_refused(probe: Probe, endpoints: dict[str, Endpoint], name: str, field: str,
                                  value: Any) -> None:
    endpoint = endpoints[name]
    probe.refused(probe.send(endpoint.method, endpoint.path, {**endpoint.body, field: value}))
