"""The v3 dialect's pure parts, without a server: request parsing, response shaping, stream chunks,
the function-path matcher, the OpenAPI document and the model catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from taskgate.api.span_bodies import parse_time
from taskgate.api.v3 import routes as v3
from taskgate.api.v3.calls import _chunks
from taskgate.api.v3.routing import _pattern, _specificity, openapi_document
from taskgate.api.v3.run_shapes import run_response, task_from_run_request
from taskgate.engine.catalogue import _catalogue, _current_prices, _pricing
from taskgate.engine.fewshot import query_text
from taskgate.engine.task import DEFAULT_INSTRUCTIONS, Failed, Finished, Result, Started, TextDelta, ToolCallDelta
from taskgate.errors import BadRequestError, UpstreamUnavailableError
from taskgate.providers.base import ToolCall, Usage
from taskgate.store.base import FunctionDefinition, FunctionRecord

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


def stored(instructions: str = "Be brief.", output_schema: dict | None = None) -> FunctionRecord:  # type: ignore[type-arg]
    now = datetime.now(UTC)
    return FunctionRecord(id="f1", project_id="p", name="fn", revision_id="r1", revision_number=1,
                          schema_hash="h", created_at=now, updated_at=now,
                          definition=FunctionDefinition(instructions=instructions, output_schema=output_schema))


def test_run_request_fields_become_a_task() -> None:
    body = {
        "input": {"q": "x"}, "instructions": "Do it.", "input_schema": {"type": "object"}, "output_schema": SCHEMA,
        "model": ["openai/gpt-4o-mini", {"name": "anthropic/claude-haiku-4-5", "options": {"temperature": 0}}],
        "tools": [{"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
                  {"name": "bare"}],
        "parent_span_id": "s1", "reasoning_effort": "low", "reasoning_summary": "auto",
        "guard": {"input": []}, "route": {"prefer": "fast"}, "stream": False,
    }
    task = task_from_run_request(body, "p", "fn", None)
    assert (task.project_id, task.function_name, task.input) == ("p", "fn", {"q": "x"})
    assert task.instructions == "Do it."
    assert task.output_schema == SCHEMA and task.input_schema == {"type": "object"}
    assert [m.name for m in task.models] == ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
    assert task.tools == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                          "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "bare"}},
    ]
    assert task.parent_span_id == "s1"
    assert task.options == {"reasoning_effort": "low"}
    assert task.record_function is True


def test_instructions_default_to_the_stored_prompt_then_the_default() -> None:
    assert task_from_run_request({"input": 1}, "p", "fn", None).instructions == DEFAULT_INSTRUCTIONS
    assert task_from_run_request({"input": 1}, "p", "fn", stored("Stored.")).instructions == "Stored."
    assert task_from_run_request({"input": 1, "instructions": "Mine."}, "p", "fn", stored()).instructions == "Mine."


@pytest.mark.parametrize("body, message", [
    ({}, "'input' is required"),
    ({"input": 1, "instructions": 3}, "'instructions' must be a string"),
    ({"input": 1, "output_schema": "string"}, "'output_schema' must be a JSON Schema object"),
    ({"input": 1, "model": 5}, "model[0]"),
    ({"input": 1, "tools": {"name": "x"}}, "'tools' must be a list"),
    ({"input": 1, "tools": [{"description": "no name"}]}, "tools[0].name"),
    ({"input": 1, "tools": [{"name": "x", "parameters": "nope"}]}, "tools[0].parameters"),
    ({"input": 1, "reasoning_effort": "maximum"}, "'reasoning_effort' must be one of"),
    ({"input": 1, "parent_span_id": 7}, "'parent_span_id' must be a string"),
])
def test_bad_run_requests_are_400s(body: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadRequestError) as caught:
        task_from_run_request(body, "p", "fn", None)
    assert message in caught.value.detail


def result(**fields: object) -> Result:
    base: dict[str, object] = dict(span_id="s", trace_id="t", text="hi", usage=Usage(3, 4, 1, 2, 5), cost=0.5,
                                   model="openai/gpt-4o-mini", attempts=2, duration_ms=12.4, generation_ms=10.6)
    base.update(fields)
    return Result(**base)  # type: ignore[arg-type]


def test_run_response_meta() -> None:
    task = task_from_run_request({"input": "x"}, "p", "fn", None)
    body = run_response(result(script_cached=True), task)
    assert body["data"] == "hi"
    assert body["meta"] == {
        "function_name": "fn", "script_cached": True, "execution_ms": 12, "llm_calls": 2, "tts_calls": 0,
        "image_gen_calls": 0, "generation_ms": 11, "cost": 0.5,
        "usage": {"input_tokens": 3, "output_tokens": 4, "reasoning_tokens": 1, "cache_read_tokens": 2,
                  "cache_creation_tokens": 5},
        "models_used": ["openai/gpt-4o-mini"], "tool_calls": [], "trace_uuid": "t", "status": "completed",
        "guards": [], "model_warnings": [],
    }
    cached = run_response(result(cached=True, cost=None, script_cached=True), task)["meta"]
    assert cached["llm_calls"] == 0 and cached["cost"] is None


def test_run_response_data_for_schemas_and_tool_calls() -> None:
    with_schema = task_from_run_request({"input": "x", "output_schema": SCHEMA}, "p", "fn", None)
    assert run_response(result(text=None, payload={"a": "b"}), with_schema)["data"] == {"a": "b"}
    plain = task_from_run_request({"input": "x"}, "p", "fn", None)
    calls = [ToolCall("c1", "get_weather", '{"city": "Paris"}'), ToolCall("c2", "odd", "not json")]
    body = run_response(result(text="", tool_calls=calls), plain)
    assert body["data"] is None
    assert body["meta"]["tool_calls"] == [{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
                                          {"id": "c2", "name": "odd", "arguments": "not json"}]
    assert run_response(result(text=""), plain)["data"] == ""


def test_stream_chunks_are_single_line_v3_frames() -> None:
    task = task_from_run_request({"input": "x"}, "p", "fn", None)
    assert _chunks(Started("s", "t"), task) == []
    assert _chunks(TextDelta("He\nllo"), task) == [b'data: {"type":"content","delta":"He\\nllo"}\n\n']
    start, delta = _chunks(ToolCallDelta(0, "c1", "get_weather", '{"ci'), task)
    assert orjson.loads(start[6:]) == {"type": "tool_call_start", "tool_call_index": 0, "tool_call_id": "c1",
                                       "tool_call_name": "get_weather"}
    assert orjson.loads(delta[6:]) == {"type": "tool_call_delta", "tool_call_index": 0, "tool_call_args": '{"ci'}
    assert len(_chunks(ToolCallDelta(0, None, None, 'ty"}'), task)) == 1
    done, complete = _chunks(Finished(result()), task)
    assert orjson.loads(done[6:])["type"] == "done"
    event_line, data_line, blank, end = complete.split(b"\n")
    assert event_line == b"event: complete" and (blank, end) == (b"", b"")
    assert orjson.loads(data_line[6:])["data"] == "hi"
    (error,) = _chunks(Failed(UpstreamUnavailableError("upstream went away")), task)
    assert orjson.loads(error[6:]) == {"type": "error", "error": "upstream went away"}


def test_function_paths_match_names_with_slashes_most_specific_first() -> None:
    call = _pattern("/v3/functions/{name}/call")
    assert call.fullmatch("/v3/functions/team/a b/call").groupdict() == {"name": "team/a b"}  # type: ignore[union-attr]
    revert = _pattern("/v3/functions/{name}/revisions/{revision_id}/revert")
    assert revert.fullmatch("/v3/functions/a/b/revisions/3/revert").groupdict() == {  # type: ignore[union-attr]
        "name": "a/b", "revision_id": "3"}
    assert revert.fullmatch("/v3/functions/a/revisions/3/4/revert") is None
    scoped = [op for op in v3.ROUTES if op.function_scoped]
    ordered = sorted(scoped, key=_specificity, reverse=True)
    assert ordered[-1].path == "/v3/functions/{name}"


def test_openapi_document_lists_exactly_the_served_operations() -> None:
    doc = openapi_document(v3.ROUTES, "9.9")
    assert doc["openapi"].startswith("3.1")
    served = {(op.method.lower(), op.path) for op in v3.ROUTES}
    documented = {(method, path) for path, methods in doc["paths"].items() for method in methods}
    assert documented == served
    assert ("post", "/v3/functions/{name}/call") in documented and ("get", "/health") in documented
    assert doc["paths"]["/v3/models"]["get"]["security"] == []
    assert doc["paths"]["/v3/functions/{name}/examples/{uuid}"]["delete"]["responses"].keys() >= {"204", "404"}
    operation_ids = [entry["operationId"] for methods in doc["paths"].values() for entry in methods.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_query_text_flattens_values_not_keys() -> None:
    assert query_text({"text": "The cat", "meta": {"lang": "en", "n": 3}, "tags": ["Cat", None]}) == "the cat en 3"
    assert query_text(None) == ""
    assert len(query_text(" ".join(f"w{i}" for i in range(500))).split()) == 64


def test_parse_time() -> None:
    assert parse_time("2030-01-01T00:00:00Z", "t") == datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_time("2030-01-01T00:00:00", "t") == datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_time(None, "t") is None
    with pytest.raises(BadRequestError):
        parse_time("yesterday", "start_time")
    with pytest.raises(BadRequestError):
        parse_time(17, "start_time")


def test_model_catalogue_from_the_price_table() -> None:
    models = {m["id"]: m for m in _catalogue((("openai", "openai"),), ("gemma-3-270m",))}
    mini = models["openai/gpt-4o-mini"]
    assert mini["type"] == "llm" and mini["provider"] == "openai" and mini["model_id"] == "gpt-4o-mini"
    assert mini["pricing"]["input"][0] > 0 and mini["pricing"]["output"][0] > mini["pricing"]["input"][0]
    assert mini["context_window"] > 0
    assert models["local/gemma-3-270m"]["pricing"] == {"input": [0.0], "output": [0.0]}
    assert not any(m["provider"] == "anthropic" for m in models.values())
    assert all(":" not in m["model_id"] for m in models.values())


def test_dated_prices_take_the_latest_in_force() -> None:
    from genai_prices.data import providers

    dated = next(m for p in providers for m in p.models
                 if isinstance(m.prices, list) and all(c.constraint is None or hasattr(c.constraint, "start_date")
                                                       for c in m.prices)
                 and all(isinstance(c.prices.input_mtok, Decimal) for c in m.prices))
    future = datetime(9999, 1, 1, tzinfo=UTC)
    assert _pricing(_current_prices(dated.prices, future))["input"] == [float(dated.prices[-1].prices.input_mtok)]
    past = datetime(1970, 1, 1, tzinfo=UTC)
    assert _pricing(_current_prices(dated.prices, past))["input"] == [float(dated.prices[0].prices.input_mtok)]
