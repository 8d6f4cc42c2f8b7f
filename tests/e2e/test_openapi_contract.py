"""The published OpenAPI document against a live `taskgate serve`, with schemathesis.

Every v3 operation gets generated requests, valid and invalid, from the document itself. Each answer
must be a documented status with a documented content type and a body that fits the documented
schema, and none may be a 5xx; a request the document calls invalid must be refused with a 4xx.
The run is seeded, keeps no example database, and sends nothing beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from taskgate import __version__
from taskgate.api.v3 import routes as v3
from taskgate.api.v3.routing import openapi_document
from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import API_KEY, ServerProcess
from tests.http_client import request

SEED = 1303
MAX_EXAMPLES = 20  # fuzzed requests per operation, beside the coverage phase's boundary cases
FUNCTION_PATHS = "^/v3/functions/\\{name\\}"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["too_slow"],  # a timing verdict: a busy CI box must not fail the run
        "headers": AUTH,
        "request-timeout": 30,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},  # the document has no links to follow
        "checks": {
            # "Valid by the schema" is not "accepted": some rules are beyond a schema (a configured
            # provider, a parent span that exists, printable ids, a time that parses). The document
            # says so in its descriptions; refusing such a request with a 400 is right.
            "positive_data_acceptance": {"enabled": False},
        },
        "operations": [
            {
                # A function name may contain `/`, so `PUT /v3/functions/a/call` is a PUT of the
                # function named `a/call`, not an undocumented method on `/call`: methods other than
                # the documented one cannot be told apart from another operation here, and the Allow
                # of a 405 there names the methods of every operation the path could be.
                "include-path-regex": FUNCTION_PATHS,
                "checks": {"unsupported_method": {"enabled": False}, "allow_header_conformance": {"enabled": False}},
            },
        ],
    })


@pytest.fixture(scope="module")
def contract_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: the run leaves hundreds of functions and spans behind."""
    fake_provider.clear()
    with ServerProcess(fake_provider, tmp_path_factory.mktemp("contract")) as server:
        yield server
    fake_provider.clear()


# Loaded from the document this code builds: pytest needs the operations at collection, before any
# server runs. The served document is checked to be exactly this one below.
DOCUMENT = openapi_document(v3.ROUTES, __version__)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config())


@schema.parametrize()
def test_the_server_keeps_its_published_contract(case: Any, contract_server: ServerProcess) -> None:
    case.call_and_validate(base_url=contract_server.url)


# ---- the answers about objects that exist, which random names and ids rarely reach


def _call(server: ServerProcess, method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None,
          **path_parameters: str) -> Any:
    """One request through schemathesis, its answer checked against the document."""
    operation = schema[path][method]
    kwargs: dict[str, Any] = {"path_parameters": path_parameters, "query": query or {}}
    if body is not None:
        kwargs["body"] = body
        kwargs["media_type"] = "application/json"
    case = operation.Case(**kwargs)
    response = case.call_and_validate(base_url=server.url, headers=AUTH)
    assert response.status_code < 300, response.text
    return response


def test_answers_about_existing_objects_fit_the_document(contract_server: ServerProcess, fake: FakeProvider) -> None:
    name = f"contract/{uuid.uuid4().hex[:8]}"
    schema_ = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    fake.script("gpt-4o-mini", Behaviour(json={"a": "x"}), Behaviour(tool_calls=[("lookup", {"q": 1})]),
                Behaviour(text="a b c d", fail_after=2), Behaviour(tool_calls=[("lookup", {"q": 2})]))
    called = _call(contract_server, "POST", "/v3/functions/{name}/call", name=name,
                   body={"input": {"q": 1}, "instructions": "Answer.", "output_schema": schema_})
    trace_id = called.json()["meta"]["trace_uuid"]
    tool = {"name": "lookup", "description": "Look it up", "parameters": {"type": "object"}}
    _call(contract_server, "POST", "/v3/call", body={"name": name, "input": "tools", "tools": [tool]})
    failed = _call(contract_server, "POST", "/v3/call/stream", body={"name": name, "input": "fails mid-way"})
    assert '"type":"error"' in failed.text
    streamed = _call(contract_server, "POST", "/v3/functions/{name}/stream", name=name,
                     body={"input": "tools", "tools": [tool]})
    assert "tool_call_start" in streamed.text
    _call(contract_server, "PUT", "/v3/functions/{name}", name=name, body={"source": "Answer briefly."})
    example = _call(contract_server, "POST", "/v3/functions/{name}/examples", name=name,
                    body={"input": "a", "output": "b", "tag": "golden"}).json()
    _call(contract_server, "POST", "/v3/functions/{name}/examples/batch", name=name,
          body=[{"input": "c", "output": "d"}])
    for method, path in [("GET", "/v3/functions/{name}"), ("GET", "/v3/functions/{name}/revisions"),
                         ("GET", "/v3/functions/{name}/examples")]:
        _call(contract_server, method, path, name=name)
    _call(contract_server, "GET", "/v3/functions/{name}/revisions/{revision_id}", name=name, revision_id="1")
    _call(contract_server, "POST", "/v3/functions/{name}/revisions/{revision_id}/revert", name=name,
          revision_id="1")
    span = _call(contract_server, "POST", "/v3/spans",
                 body={"name": "root", "trace_id": trace_id, "input": {"x": 1}, "metadata": {"m": 1}}).json()["data"]
    _call(contract_server, "PATCH", "/v3/spans/{id}", id=span["id"], body={"error": "it broke", "score": 0.5})
    _call(contract_server, "GET", "/v3/spans/{id}", id=span["id"])
    _call(contract_server, "GET", "/v3/traces", query={"name": "root"})
    trace = _call(contract_server, "GET", "/v3/traces/{id}", id=trace_id).json()
    assert trace["span_count"] >= 2
    _call(contract_server, "GET", "/v3/models", query={"deprecated": "false", "sort": "cost", "order": "desc"})
    _call(contract_server, "DELETE", "/v3/functions/{name}/examples/{uuid}", name=name, uuid=example["uuid"])
    _call(contract_server, "DELETE", "/v3/spans/{id}", id=span["id"])
    _call(contract_server, "DELETE", "/v3/traces/{id}", id=trace_id)
    _call(contract_server, "DELETE", "/v3/functions/{name}", name=name)


def test_upstream_failures_are_documented_answers(contract_server: ServerProcess, fake: FakeProvider) -> None:
    """429 and 502 are declared for calls, with the error body (a 502 is the point here, not a failure)."""
    for status, expected in [(429, 429), (500, 502)]:
        fake.clear()
        fake.script("gpt-4o-mini", *[Behaviour(status=status)] * 4)
        case = schema["/v3/call"]["POST"].Case(body={"name": "upstream", "input": "x"}, media_type="application/json")
        response = case.call_and_validate(base_url=contract_server.url, headers=AUTH,
                                          excluded_checks=[not_a_server_error])
        assert response.status_code == expected, response.text
        assert json.loads(response.text)["error"]["code"].startswith("upstream")


def test_the_served_document_is_the_one_tested(contract_server: ServerProcess) -> None:
    served = request("GET", f"{contract_server.url}/v3/openapi.json", key=None).json()
    assert served == json.loads(json.dumps(DOCUMENT))


def test_recorded_generations_fit_the_document(contract_server: ServerProcess, fake: FakeProvider) -> None:
    _call(contract_server, "POST", "/v3/call", body={"name": "generations", "input": "x"})
    listed = _call(contract_server, "GET", "/v3/generations", query={"query": "gpt-4o-mini", "page_size": 5}).json()
    generation_id = listed["data"][0]["id"]
    _call(contract_server, "GET", "/v3/generations/{id}", id=generation_id)
    _call(contract_server, "DELETE", "/v3/generations/{id}", id=generation_id)
