"""The OpenAPI document describes the real bodies and parameters, and the router holds requests to it:
the request-body gate (its messages, what it lets through) and the query parameters parsed from
their published definitions."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from taskgate import __version__
from taskgate.api.body_schemas import BodyGate
from taskgate.api.v3 import routes as v3
from taskgate.api.v3.examples import EXAMPLE_INPUT, MAX_BATCH
from taskgate.api.v3.routing import JSON, OFFSET, Param, limit_param, openapi_document
from taskgate.api.v3.run_shapes import CALL_REQUEST, RUN_REQUEST, task_from_run_request
from taskgate.api.v3.spans import CREATE_SPAN_REQUEST
from taskgate.errors import BadRequestError
from taskgate.server.request_io import MAX_SQL_INT
from tests.e2e.test_v3_http import assert_error, fn_url
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import request

DOCUMENT = openapi_document(v3.ROUTES, __version__)


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, entry) for path, methods in DOCUMENT["paths"].items() for method, entry in methods.items()]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_every_request_and_response_body_has_a_real_schema() -> None:
    for method, path, entry in operations():
        if method in ("post", "put", "patch") and not path.endswith("/revert"):
            schema = resolve(entry["requestBody"]["content"][JSON]["schema"])
            assert schema.get("type") in ("object", "array"), (method, path)
        for status, response in entry["responses"].items():
            if status == "204":
                assert "content" not in response, (method, path)
                continue
            for media, content in response["content"].items():
                schema = resolve(content["schema"])
                assert schema.get("type") or schema.get("oneOf"), (method, path, status, media)
            if status.startswith(("4", "5")):
                assert response["content"][JSON]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}


def test_query_and_path_parameters_have_their_real_types_and_bounds() -> None:
    parameters = {(path, parameter["name"]): parameter for _, path, entry in operations()
                  for parameter in entry.get("parameters", [])}
    assert parameters["/v3/functions/{name}/examples", "limit"]["schema"] == {
        "type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert parameters["/v3/traces", "offset"]["schema"] == {
        "type": "integer", "minimum": 0, "maximum": MAX_SQL_INT, "default": 0}
    assert parameters["/v3/models", "deprecated"]["schema"] == {"type": "boolean"}
    assert parameters["/v3/models", "sort"]["schema"]["enum"] == ["id", "name", "provider", "cost", "context_window"]
    revision = parameters["/v3/functions/{name}/revisions/{revision_id}", "revision_id"]
    assert revision["in"] == "path" and revision["required"] and revision["schema"]["type"] == "integer"
    for (_, name), parameter in parameters.items():
        if name in ("limit", "offset"):
            assert parameter["schema"]["type"] == "integer", parameter


def test_streams_yaml_errors_and_no_content_are_documented_as_served() -> None:
    paths = DOCUMENT["paths"]
    assert set(paths["/v3/openapi.yaml"]["get"]["responses"]["200"]["content"]) == {"application/yaml"}
    assert set(paths["/v3/call"]["post"]["responses"]["200"]["content"]) == {JSON, "text/event-stream"}
    assert set(paths["/v3/functions/{name}/stream"]["post"]["responses"]["200"]["content"]) == {"text/event-stream"}
    assert {"400", "401", "404", "413", "429", "500", "502", "503", "504"} <= set(
        paths["/v3/functions/{name}/call"]["post"]["responses"])
    assert "409" in paths["/v3/spans"]["post"]["responses"]
    assert "401" not in paths["/v3/models"]["get"]["responses"]
    error = DOCUMENT["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["type", "message", "detail", "error"]


def test_nullable_fields_are_declared_nullable() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["Span"]["properties"]["parent_id"]["type"] == ["string", "null"]
    assert schemas["Span"]["properties"]["end_time"]["type"] == ["string", "null"]
    assert schemas["TraceSummary"]["properties"]["name"]["type"] == ["string", "null"]
    assert schemas["Example"]["properties"]["tag"]["type"] == ["string", "null"]
    assert schemas["RunRequest"]["properties"]["instructions"]["type"] == ["string", "null"]


# ---- the request-body gate


@pytest.mark.parametrize("body, message", [
    ({}, "'input' is required"),
    ({"input": 1, "instructions": 3}, "'instructions' must be a string or null"),
    ({"input": 1, "output_schema": "string"}, "'output_schema' must be an object or null"),
    ({"input": 1, "model": 5},
     "'model' must be a model name, an object with 'name', or a fallback list of those (tried in order)"),
    ({"input": 1, "model": [{"options": {}}]}, "'model[0].name' is required"),
    ({"input": 1, "model": {"name": "openai/x", "extra_headers": {"a": 1}}},
     "'model.extra_headers.a' must be a string"),
    ({"input": 1, "tools": {"name": "x"}}, "'tools' must be an array or null"),
    ({"input": 1, "tools": [{"description": "no name"}]}, "'tools[0].name' is required"),
    ({"input": 1, "tools": [{"name": "x", "parameters": "nope"}]}, "'tools[0].parameters' must be an object or null"),
    ({"input": 1, "reasoning_effort": "maximum"}, "'reasoning_effort' must be one of low, medium, high, null"),
    ({"input": 1, "parent_span_id": 7}, "'parent_span_id' must be a string or null"),
    ({"input": 1, "stream": "yes"}, "'stream' must be a boolean or null"),
    ([1], "the request body must be an object"),
])
def test_the_gate_names_the_json_path_and_the_problem(body: Any, message: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        BodyGate(RUN_REQUEST).check(body)
    assert caught.value.detail == message


def test_the_gate_is_at_least_as_strict_as_the_parser() -> None:
    """Every body the hand parser refuses, the gate refuses first, so the parser's checks are a second line."""
    for body in [{}, {"input": 1, "instructions": 3}, {"input": 1, "model": 5}, {"input": 1, "tools": {}},
                 {"input": 1, "tools": [{"parameters": {}}]}, {"input": 1, "reasoning_effort": "max"}]:
        with pytest.raises(BadRequestError):
            task_from_run_request(body, "p", "fn", None)
        with pytest.raises(BadRequestError):
            BodyGate(RUN_REQUEST).check(body)


def test_what_the_sdks_send_passes_the_gate() -> None:
    """2.1.1's RunRequest with every field it fills, nulls where the parsers take null as absent."""
    run = {"input": {"q": "x"}, "input_schema": {"type": "object"}, "output_schema": {"type": "object"},
           "instructions": "Do it.", "model": ["openai/gpt-4o-mini", {"name": "anthropic/c", "options": {"t": 0},
                                                                       "extra_headers": {"x-a": "b"}}],
           "parent_span_id": "s1", "tools": [{"name": "t", "description": None, "parameters": None, "type": None}],
           "reasoning_effort": "low", "reasoning_summary": None, "guard": {"input": []}, "route": {"prefer": "fast"},
           "hints": {}, "stream": None, "model_extra": "anything"}
    BodyGate(RUN_REQUEST).check(run)
    BodyGate(CALL_REQUEST).check({**run, "name": "team/fn"})
    BodyGate(CREATE_SPAN_REQUEST).check({"name": "trace", "start_time": "2030-01-01T00:00:00", "input": "x",
                                         "meta": {}, "tags": {"tool": True}, "trace_id": None, "parent_id": None})
    with pytest.raises(BadRequestError, match="'name' must not be blank"):
        BodyGate(CALL_REQUEST).check({**run, "name": "   "})
    for unsupported in ({"reasoning_summary": "auto"}, {"route": {"prefer": "x"}}, {"hints": {"seed": 1}}):
        with pytest.raises(BadRequestError):  # refused by name, never silently dropped (api/v3/preferences.py)
            BodyGate(RUN_REQUEST).check({**run, **unsupported})


def test_the_gate_never_echoes_the_value_and_walks_no_deeper_than_its_schema() -> None:
    secret = "TOPSECRET" * 1000
    with pytest.raises(BadRequestError) as caught:
        BodyGate(RUN_REQUEST).check({"input": 1, "instructions": [secret]})
    assert "TOPSECRET" not in caught.value.detail
    deep: Any = 1
    for _ in range(1000):
        deep = [deep]
    BodyGate(RUN_REQUEST).check({"input": deep, "output_schema": {"a": deep}})


def test_batch_bounds_come_from_the_schema() -> None:
    gate = BodyGate({"type": "array", "items": EXAMPLE_INPUT, "minItems": 1, "maxItems": MAX_BATCH})
    with pytest.raises(BadRequestError, match=r"^the request body must not be empty$"):
        gate.check([])
    with pytest.raises(BadRequestError, match=f"must have at most {MAX_BATCH} items"):
        gate.check([{"input": 1, "output": 2}] * (MAX_BATCH + 1))
    with pytest.raises(BadRequestError, match=r"^'\[1\].tag' must be a string or null$"):
        gate.check([{"input": 1, "output": 2}, {"input": 1, "output": 2, "tag": 3}])


# ---- query parameters parsed from the published definitions


def query(string: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": string.encode(), "headers": []})


@pytest.mark.parametrize("param, string, value", [
    (limit_param(50, 200), "", 50),
    (limit_param(50, 200), "limit=", 50),
    (limit_param(50, 200), "limit=200", 200),
    (OFFSET, f"offset={MAX_SQL_INT}", MAX_SQL_INT),
    (Param("deprecated", {"type": "boolean"}, ""), "deprecated=False", False),
    (Param("deprecated", {"type": "boolean"}, ""), "", None),
    (Param("order", {"type": "string", "enum": ["asc", "desc"], "default": "asc"}, ""), "", "asc"),
    (Param("tag", {"type": "string"}, ""), "tag=golden", "golden"),
])
def test_query_values_follow_their_definitions(param: Param, string: str, value: Any) -> None:
    assert param.parse(query(string)) == value


@pytest.mark.parametrize("param, string, message", [
    (limit_param(50, 200), "limit=201", "query parameter 'limit' must be an integer from 1 to 200, got '201'"),
    (limit_param(50, 200), "limit=abc", "query parameter 'limit' must be an integer from 1 to 200, got 'abc'"),
    (limit_param(50, 200), "limit=%D9%A5", "must be an integer"),  # an Arabic-Indic five, which int() takes
    (limit_param(50, 200), "limit=1_0", "must be an integer"),
    (limit_param(50, 200), "limit=%2B5", "must be an integer"),
    (OFFSET, "offset=" + "9" * 5000, "must be an integer"),  # int() refuses it with a ValueError of its own
    (OFFSET, f"offset={MAX_SQL_INT + 1}", f"query parameter 'offset' must be an integer from 0 to {MAX_SQL_INT}"),
    (Param("deprecated", {"type": "boolean"}, ""), "deprecated=maybe", "must be true or false, got 'maybe'"),
    (Param("order", {"type": "string", "enum": ["asc", "desc"]}, ""), "order=up", "must be one of asc, desc"),
])
def test_query_values_outside_their_definitions_are_400s(param: Param, string: str, message: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        param.parse(query(string))
    assert message in caught.value.detail


# ---- over HTTP


def test_a_body_against_the_document_is_refused_before_anything_runs(server: ServerProcess,
                                                                     fake: FakeProvider) -> None:
    """`stream: "yes"` was silently a plain call, and `tools[0].type: 5` was ignored."""
    for body, field in [({"name": "gate", "input": "x", "stream": "yes"}, "'stream'"),
                        ({"name": "gate", "input": "x", "tools": [{"name": "t", "type": 5}]}, "'tools[0].type'")]:
        body_ = assert_error(request("POST", f"{server.url}/v3/call", body), 400, "bad_request")
        assert body_["detail"].startswith(field)
    assert fake.requests == []


def test_an_offset_beyond_64_bits_is_a_400_not_a_database_error(server: ServerProcess, fake: FakeProvider) -> None:
    request("POST", fn_url(server, "big-offset", "/examples"), {"input": "x", "output": "y"})
    for url in (f"{server.url}/v3/functions?offset={MAX_SQL_INT + 1}", f"{server.url}/v3/traces?offset=1{'0' * 30}",
                fn_url(server, "big-offset", f"/examples?offset={MAX_SQL_INT + 1}"),
                f"{server.url}/v3/models?offset={MAX_SQL_INT + 1}"):
        assert_error(request("GET", url), 400, "bad_request")
    assert request("GET", f"{server.url}/v3/functions?offset={MAX_SQL_INT}").json() == {"functions": []}


def test_a_span_meta_cannot_take_the_keys_taskgate_keeps_its_own_fields_under(server: ServerProcess,
                                                                             fake: FakeProvider) -> None:
    """`meta._metadata` came back as the span's `metadata`, a number where every client reads an object."""
    assert_error(request("POST", f"{server.url}/v3/spans", {"name": "x", "meta": {"_metadata": 5}}), 400)
    span = request("POST", f"{server.url}/v3/spans", {"name": "x", "meta": {"a": 1}}).json()["data"]
    assert_error(request("PATCH", f"{server.url}/v3/spans/{span['id']}", {"meta": {"_score": "high"}}), 400)
    shown = request("GET", f"{server.url}/v3/spans/{span['id']}").json()
    assert shown["meta"] == {"a": 1} and shown["metadata"] == {}
