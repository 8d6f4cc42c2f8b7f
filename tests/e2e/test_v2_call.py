"""`POST /v2/call` end to end: a real `taskgate serve` against the fake OpenAI and Anthropic servers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema_rs
import pytest

from tests.fakes.common import Behaviour
from tests.http_client import get, post, request
from tests.schemas import CAPITAL_SCHEMA

PEOPLE_SCHEMA = {
    "$defs": {
        "Person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        }
    },
    "type": "object",
    "properties": {"people": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "minItems": 1}},
    "required": ["people"],
}


def call(server, body, **kw):
    return post(f"{server.url}/v2/call", body, **kw)


def span_of(server, span_id):
    reply = get(f"{server.url}/v3/spans/{span_id}")
    assert reply.status == 200, reply.body
    return reply.json()["data"]


def test_text_call_returns_message_usage_cost_and_records_a_span(server, fake):
    reply = call(server, {"name": "greet", "instructions": "Say hello", "input": "hi", "model": "openai/gpt-4o-mini"})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["message"] == "Hello from gpt-4o-mini! This is a fake reply."
    assert body["json_payload"] is None and body["cached"] is False
    usage = body["usage"]
    assert usage["output_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    expected = (usage["input_tokens"] * 0.15 + usage["output_tokens"] * 0.6) / 1e6
    assert body["cost"]["generation"] == pytest.approx(expected)
    assert body["cost"]["platform"] == 0 and body["cost"]["total"] == pytest.approx(expected)
    sent = fake.requests[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Say hello"}
    assert sent["messages"][-1] == {"role": "user", "content": "hi"}
    span = span_of(server, body["span_id"])
    assert span["name"] == "greet"
    assert span["output"] == body["message"]


def test_default_instructions_and_default_model(server, fake):
    body = call(server, {"name": "defaults", "input": "x"}).json()
    assert body["message"].startswith("Hello from gpt-4o-mini")
    assert fake.requests[-1].json["messages"][0]["content"] == "You are a helpful assistant"


def test_structured_output_uses_native_json_schema_and_validates(server, fake):
    body = call(server, {"name": "people", "input": "list people", "output_schema": PEOPLE_SCHEMA,
                         "model": "openai/gpt-4o-mini"}).json()
    assert body["message"] is None
    assert jsonschema_rs.Draft202012Validator(PEOPLE_SCHEMA).is_valid(body["json_payload"])
    response_format = fake.requests[-1].json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"] == PEOPLE_SCHEMA["properties"]


def test_strict_mode_when_the_schema_fits_openais_subset(server, fake):
    schema = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}
    call(server, {"name": "strict", "input": {"x": 1}, "output_schema": schema, "model": "openai/gpt-4o-mini"})
    sent = fake.requests[-1].json["response_format"]["json_schema"]
    assert sent["strict"] is True
    assert sent["schema"]["additionalProperties"] is False


def test_anthropic_structured_output_is_a_forced_tool(server, fake):
    body = call(server, {"name": "capital", "input": {"country": "Sweden"}, "output_schema": CAPITAL_SCHEMA,
                         "model": "anthropic/claude-haiku-4-5"}).json()
    assert jsonschema_rs.Draft202012Validator(CAPITAL_SCHEMA).is_valid(body["json_payload"])
    sent = fake.requests[-1].json
    assert sent["tool_choice"]["type"] == "tool"
    assert sent["tools"][0]["name"] == sent["tool_choice"]["name"]
    assert sent["tools"][0]["input_schema"]["properties"] == CAPITAL_SCHEMA["properties"]
    assert body["cost"] is not None and body["cost"]["total"] > 0


def test_retries_show_the_model_its_validation_errors_and_sum_usage(server, fake):
    fake.script("gpt-4o-mini", Behaviour(json={"capital": 5}), Behaviour(text="not json"),
                Behaviour(json={"capital": "Stockholm", "population": 975000}))
    body = call(server, {"name": "retry", "input": {"country": "Sweden"}, "output_schema": CAPITAL_SCHEMA,
                         "model": "openai/gpt-4o-mini"}).json()
    assert body["json_payload"] == {"capital": "Stockholm", "population": 975000}
    assert len(fake.requests) == 3
    second, third = fake.requests[1].json["messages"], fake.requests[2].json["messages"]
    assert "$.capital" in second[-1]["content"] and "integer" not in second[-2]["content"]
    assert "not valid JSON" in third[-1]["content"]
    single = call(server, {"name": "retry", "input": {"country": "Sweden"}, "output_schema": CAPITAL_SCHEMA,
                           "model": "openai/gpt-4o-mini"}).json()
    assert body["usage"]["output_tokens"] > single["usage"]["output_tokens"]
    span = span_of(server, body["span_id"])
    assert span["attempts"] == 3


def test_structured_generation_error_after_max_attempts(server, fake):
    fake.script("gpt-4o-mini", *[Behaviour(json={"capital": 1})] * 2)
    reply = call(server, {"name": "fails", "input": "x", "output_schema": CAPITAL_SCHEMA, "model": "openai/gpt-4o-mini",
                          "configuration": {"invocation.structured_generation.max_attempts": 2}})
    assert reply.status == 400
    body = reply.json()
    assert body["type"] == "StructuredGenerationError"
    assert "2 attempts" in body["detail"] and "$.capital" in body["detail"]
    assert body["error"]["code"] == "structured_generation_failed"
    assert len(fake.requests) == 2


@pytest.mark.parametrize("failure", [Behaviour(status=500), Behaviour(status=429), Behaviour(status=503),
                                     Behaviour(raw_body=b"{not json")])
def test_fallback_chain_moves_on_after_retriable_failures(server, fake, failure):
    fake.script("gpt-4o", failure)
    body = call(server, {"name": "fallback", "input": "x",
                         "model": ["openai/gpt-4o", {"name": "anthropic/claude-haiku-4-5",
                                                    "options": {"temperature": 0.2}}]}).json()
    assert body["message"].startswith("Hello from claude-haiku-4-5")
    assert fake.requests[-1].json["temperature"] == 0.2
    span = span_of(server, body["span_id"])
    assert span["model"] == "anthropic/claude-haiku-4-5"
    assert span["models_failed"][0].startswith("openai/gpt-4o")


def test_fallback_on_timeout(server, fake):
    fake.script("gpt-4o", Behaviour(delay_s=3))
    body = call(server, {"name": "slow", "input": "x", "model": [
        {"name": "openai/gpt-4o", "options": {"timeout": 0.5}}, "openai/gpt-4o-mini"]}).json()
    assert body["message"].startswith("Hello from gpt-4o-mini")


def test_every_model_failing_is_a_provider_error(server, fake):
    fake.script("gpt-4o", Behaviour(status=500))
    reply = call(server, {"name": "allfail", "input": "x", "model": "openai/gpt-4o"})
    assert reply.status == 502
    assert reply.json()["error"]["code"] == "upstream_unavailable"


def test_model_options_and_extra_headers_pass_through(server, fake):
    call(server, {"name": "opts", "input": "x", "model": {
        "name": "openai/gpt-4o-mini", "options": {"temperature": 0.3, "max_tokens": 7},
        "extra_headers": {"X-Trace": "abc"}}})
    sent = fake.requests[-1]
    assert sent.json["temperature"] == 0.3 and sent.json["max_tokens"] == 7
    assert sent.headers.get("X-Trace") == "abc" or sent.headers.get("x-trace") == "abc"


def test_examples_are_demonstrations_in_the_prompt(server, fake):
    call(server, {"name": "add", "input": {"x": 4, "y": 5}, "examples": [
        {"input": {"x": 1, "y": 3}, "output": {"sum": 4}, "comment": "Adds two numbers"}]})
    messages = fake.requests[-1].json["messages"]
    assert messages[1]["role"] == "user" and '{"x":1,"y":3}' in messages[1]["content"]
    assert messages[2] == {"role": "assistant", "content": '{"sum":4}'}
    assert messages[3]["content"] == '{"x":4,"y":5}'


def test_cache_hit_makes_no_provider_call_and_costs_nothing(server, fake):
    body = {"name": "cached", "input": "same", "model": "openai/gpt-4o-mini",
            "configuration": {"invocation.cache.ttl": 60}}
    first = call(server, body).json()
    second = call(server, body).json()
    assert first["cached"] is False and second["cached"] is True
    assert second["message"] == first["message"]
    assert second["cost"]["total"] == 0
    assert len(fake.requests) == 1
    changed = call(server, {**body, "input": "different"}).json()
    assert changed["cached"] is False and len(fake.requests) == 2


def test_unknown_price_gives_null_cost(server, fake):
    body = call(server, {"name": "noprice", "input": "x", "model": "openai/taskgate-unpriced-model"}).json()
    assert body["cost"] is None


def test_tags_and_parent_span_put_the_call_in_the_parents_trace(server, fake):
    parent = call(server, {"name": "parent", "input": "x"}).json()
    child = call(server, {"name": "child", "input": "y", "parent_span_id": parent["span_id"],
                          "tags": {"user": "company_123"}}).json()
    parent_span, child_span = span_of(server, parent["span_id"]), span_of(server, child["span_id"])
    assert child_span["parent_id"] == parent["span_id"]
    assert child_span["trace_id"] == parent_span["trace_id"]
    assert child_span["tags"] == {"user": "company_123"}


def test_new_revision_only_when_the_definition_changes(server, fake):
    for instructions in ("one", "one", "two"):
        call(server, {"name": "revised", "instructions": instructions, "input": "x"})
    revisions = get(f"{server.url}/v3/functions/revised/revisions").json()["revisions"]
    assert len(revisions) == 2


# ---- bad input: a clear 4xx, never a 500


def test_unknown_parent_span_is_404(server, fake):
    reply = call(server, {"name": "orphan", "input": "x", "parent_span_id": "123e4567-e89b-12d3-a456-426614174000"})
    assert reply.status == 404
    assert reply.json()["type"] == "NotFoundError" and "123e4567" in reply.json()["detail"]


def test_parent_span_from_another_project_is_404(server, fake):
    other_key = subprocess.run(
        [str(Path(sys.executable).parent / "taskgate"), "keys", "create", "--project", "other",
         "--data-dir", str(server.data_dir)], capture_output=True, text=True, check=True).stdout.strip()
    foreign = call(server, {"name": "theirs", "input": "x"}, key=other_key).json()
    reply = call(server, {"name": "mine", "input": "x", "parent_span_id": foreign["span_id"]})
    assert reply.status == 404


@pytest.mark.parametrize(("raw", "status", "needle"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b"", 400, "empty"),
    (b'{"input": "no name"}', 422, "'name' is required"),
    (b'{"name": "x", "output_schema": "nope"}', 422, "output_schema"),
    (b'{"name": "x", "examples": [{"input": 1}]}', 422, "examples[0]"),
    (b'{"name": "x", "model": 5}', 400, "model[0]"),
    (b'{"name": "x", "configuration": {"invocation.cache.ttl": "soon"}}', 422, "invocation.cache.ttl"),
])
def test_malformed_bodies(server, fake, raw, status, needle):
    reply = call(server, None, raw=raw)
    assert reply.status == status, reply.body
    body = reply.json()
    assert needle in body["detail"] and body["error"]["message"] == body["detail"]
    assert fake.requests == []


def test_schema_that_does_not_compile_is_400_naming_the_problem(server, fake):
    reply = call(server, {"name": "bad", "input": "x", "output_schema": {"type": "nope"}})
    assert reply.status == 400
    assert "output_schema does not compile" in reply.json()["detail"]
    reply = call(server, {"name": "bad", "input": "x", "input_schema": {"$ref": "#/$defs/missing"}})
    assert reply.status == 400 and "input_schema" in reply.json()["detail"]


def test_input_validation_names_the_failing_path(server, fake):
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    reply = call(server, {"name": "validated", "input": {"x": "four"}, "input_schema": schema,
                          "configuration": {"beta.invocation.input_validation.enabled": True}})
    assert reply.status == 400
    assert "$.x" in reply.json()["detail"]
    assert fake.requests == []
    off = call(server, {"name": "validated", "input": {"x": "four"}, "input_schema": schema})
    assert off.status == 200


def test_unknown_provider_names_the_variable_to_set(server, fake):
    reply = call(server, {"name": "p", "input": "x", "model": "groq/llama-3.1-8b-instant"})
    assert reply.status == 400
    assert "GROQ_API_KEY" in reply.json()["detail"]
    reply = call(server, {"name": "p", "input": "x", "model": "nosuchvendor/model"})
    assert reply.status == 400 and "unknown provider" in reply.json()["detail"]
    reply = call(server, {"name": "p", "input": "x", "model": "no-slash"})
    assert reply.status == 400 and "provider/model" in reply.json()["detail"]


def test_model_the_provider_rejects_is_400(server, fake):
    reply = call(server, {"name": "p", "input": "x", "model": "openai/reject-model"})
    assert reply.status == 400
    assert "does not exist" in reply.json()["detail"]


def test_body_over_the_size_limit_is_413(server, fake):
    reply = call(server, None, raw=b'{"name": "big", "input": "' + b"x" * (10 * 1024 * 1024 + 10) + b'"}')
    assert reply.status == 413
    assert reply.json()["type"] == "PayloadTooLargeError"


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_key_is_401_with_the_hybrid_body(server, fake, key):
    reply = call(server, {"name": "x"}, key=key)
    assert reply.status == 401
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["type"] == "UnauthorizedError" and body["detail"] and body["error"]["code"] == "unauthorized"


def test_health_needs_no_key(server):
    reply = get(f"{server.url}/health", key=None)
    assert reply.status == 200 and json.loads(reply.body)["status"] == "ok"


def test_root_call_path_is_the_same_handler(server, fake):
    reply = post(f"{server.url}/call", {"name": "root", "input": "x"})
    assert reply.status == 200 and reply.json()["message"]


def test_hit_count_counts_calls(server, fake):
    for _ in range(3):
        call(server, {"name": "counted", "input": "x"})
    deadline = time.time() + 10
    while time.time() < deadline:
        functions = get(f"{server.url}/v3/functions").json()["functions"]
        counted = next(f for f in functions if f["name"] == "counted")
        if counted["hit_count"] == 3:
            break
        time.sleep(0.3)
    assert counted["hit_count"] == 3


def test_a_reask_goes_to_the_model_that_answered(server, fake):
    fake.script("gpt-4o", Behaviour(status=500))
    fake.script("claude-haiku-4-5", Behaviour(json={"capital": 1}), Behaviour(json={"capital": "Oslo"}))
    body = call(server, {"name": "reask-chain", "input": "Norway", "output_schema": CAPITAL_SCHEMA,
                         "model": ["openai/gpt-4o", "anthropic/claude-haiku-4-5"]}).json()
    assert body["json_payload"] == {"capital": "Oslo"}
    assert [r.model for r in fake.requests] == ["gpt-4o", "claude-haiku-4-5", "claude-haiku-4-5"]
    span = span_of(server, body["span_id"])
    assert span["attempts"] == 2 and len(span["models_failed"]) == 1


def test_fixed_paths_answer_wrong_methods_and_near_misses_like_any_other_route(server):
    """Call endpoints are dispatched from a table ahead of the router: a wrong method, a near-miss
    path and a HEAD must still get the router's answers, never a handler that was not asked for."""
    assert get(f"{server.url}/v2/call").status == 405
    assert post(f"{server.url}/v2/call/", {"name": "x", "input": "y"}).status == 307  # the router's slash redirect
    assert post(f"{server.url}/v2/calls", {"name": "x", "input": "y"}).status == 404
    assert get(f"{server.url}/health").status == 200
    head = request("HEAD", f"{server.url}/health")
    assert head.status == 200 and head.body == b""
    assert post(f"{server.url}/v2/call", {"name": "fixed-path", "input": "y"}).status == 200
