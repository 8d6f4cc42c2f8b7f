"""The caller's property order is part of a schema's meaning, end to end (issue 17, item 1).

A schema written `thoughts` before `answer` makes the model reason first. Every test uses schemas
whose order is not alphabetical at any level (nested objects and arrays of objects included), and
lets the fake model answer in the order of the schema it was sent, as a real one does: so what the
caller gets back shows which order reached the provider.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.http_client import get, post, sse_events

STEP: dict[str, Any] = {"type": "object", "required": ["why", "action", "effect"], "properties": {
    "why": {"type": "string"}, "action": {"type": "string"}, "effect": {"type": "string"}}}
VERDICT: dict[str, Any] = {"type": "object", "required": ["score", "label", "reason"], "properties": {
    "score": {"type": "integer"}, "label": {"type": "string"}, "reason": {"type": "string"}}}
# Strict-mode ready (every property required), so OpenAI gets its strict variant.
REASONED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "thoughts": {"type": "string"},
        "steps": {"type": "array", "items": STEP},
        "verdict": VERDICT,
        "answer": {"type": "string"},
    },
    "required": ["thoughts", "steps", "verdict", "answer"],
}


def swapped(schema: Any) -> Any:
    """The same schema with the first two properties (and `required` entries) of every object swapped:
    another order that is still not alphabetical at any level."""
    if isinstance(schema, list):
        return [swapped(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: swapped(value) for key, value in schema.items()}
    for key in ("properties", "required"):
        if key in out:
            items = list(out[key].items()) if key == "properties" else list(out[key])
            items[:2] = items[1::-1]
            out[key] = dict(items) if key == "properties" else items
    return out


SWAPPED: dict[str, Any] = swapped(REASONED)


def schema_order(schema: dict[str, Any]) -> list[Any]:
    """The property names of `schema` in order, each with its own nested order when it has one."""
    return [(name, _nested_order(sub)) for name, sub in schema["properties"].items()]


def _nested_order(schema: dict[str, Any]) -> list[Any]:
    if "properties" in schema:
        return schema_order(schema)
    if isinstance(schema.get("items"), dict):
        return _nested_order(schema["items"])
    return []


def value_order(value: Any) -> list[Any]:
    """The keys of `value` in order, like `schema_order` (an array by its first item)."""
    if isinstance(value, list):
        return value_order(value[0]) if value else []
    if isinstance(value, dict):
        return [(key, value_order(item)) for key, item in value.items()]
    return []


def required_order(schema: Any) -> list[Any]:
    """Every `required` list in document order."""
    if isinstance(schema, list):
        return [found for item in schema for found in required_order(item)]
    if not isinstance(schema, dict):
        return []
    own = [schema["required"]] if isinstance(schema.get("required"), list) else []
    return own + [found for key, item in schema.items() if key != "required" for found in required_order(item)]


def call(server: Any, schema: dict[str, Any], model: str, **extra: Any) -> dict[str, Any]:
    reply = post(f"{server.url}/v2/call", {"name": "ordered", "input": "judge this", "output_schema": schema,
                                             "model": model, **extra})
    assert reply.status == 200, reply.body
    return reply.json()


def test_the_order_is_not_alphabetical_anywhere() -> None:
    """Guards the tests below: sorting would change every level of both schemas."""
    for schema in (REASONED, SWAPPED):
        names = [list(schema["properties"]), list(schema["properties"]["steps"]["items"]["properties"]),
                 list(schema["properties"]["verdict"]["properties"])]
        assert all(level != sorted(level) for level in names)


@pytest.mark.parametrize("schema", [REASONED, SWAPPED], ids=["reasoned", "swapped"])
def test_openai_strict_schema_and_json_payload_keep_the_callers_order(server: Any, fake: Any,
                                                                      schema: dict[str, Any]) -> None:
    body = call(server, schema, "openai/gpt-4o-mini")
    sent = fake.requests[-1].json["response_format"]["json_schema"]
    assert sent["strict"] is True
    assert schema_order(sent["schema"]) == schema_order(schema)
    assert required_order(sent["schema"]) == required_order(schema)
    assert value_order(body["json_payload"]) == schema_order(schema)


@pytest.mark.parametrize("schema", [REASONED, SWAPPED], ids=["reasoned", "swapped"])
def test_anthropic_tool_schema_and_json_payload_keep_the_callers_order(server: Any, fake: Any,
                                                                       schema: dict[str, Any]) -> None:
    body = call(server, schema, "anthropic/claude-haiku-4-5")
    sent = fake.requests[-1].json["tools"][-1]["input_schema"]
    assert schema_order(sent) == schema_order(schema)
    assert required_order(sent) == required_order(schema)
    assert value_order(body["json_payload"]) == schema_order(schema)


def test_two_orders_in_turn_each_reach_the_provider_in_their_own_order(server: Any, fake: Any) -> None:
    """The strict-variant cache must not hand the second order the first one's form."""
    first, second = REASONED, SWAPPED
    for schema in (first, second, first):
        body = call(server, schema, "openai/gpt-4o-mini")
        assert schema_order(fake.requests[-1].json["response_format"]["json_schema"]["schema"]) == schema_order(schema)
        assert value_order(body["json_payload"]) == schema_order(schema)


def test_v3_data_keeps_the_callers_order(server: Any, fake: Any) -> None:
    reply = post(f"{server.url}/v3/call", {"name": "ordered-v3", "input": "judge this", "output_schema": REASONED,
                                           "model": "openai/gpt-4o-mini"})
    assert reply.status == 200, reply.body
    assert value_order(reply.json()["data"]) == schema_order(REASONED)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_stream_json_paths_come_in_the_callers_order(server: Any, fake: Any, model: str) -> None:
    reply = post(f"{server.url}/v2/call/stream", {"name": "ordered-stream", "input": "judge this",
                                                  "output_schema": REASONED, "model": model})
    assert reply.status == 200, reply.body
    paths = [event["json_path"] for event in map(json.loads, sse_events(reply)) if event.get("chunk_type") == "json"]
    first_seen = list(dict.fromkeys(paths))
    assert first_seen == ["response.thoughts", "response.steps[0].why", "response.steps[0].action",
                          "response.steps[0].effect", "response.verdict.score", "response.verdict.label",
                          "response.verdict.reason", "response.answer"]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_the_same_schema_in_two_orders_does_not_share_a_cache_entry(any_server: Any, fake: Any, model: str) -> None:
    """On SQLite and Postgres alike (whose jsonb would reorder a stored object's keys)."""
    cached = {"configuration": {"invocation.cache.ttl": 60}}
    first = call(any_server, REASONED, model, **cached)
    second = call(any_server, SWAPPED, model, **cached)
    assert first["cached"] is False and second["cached"] is False
    assert len(fake.requests) == 2
    assert value_order(second["json_payload"]) == schema_order(SWAPPED)
    for schema in (REASONED, SWAPPED):
        hit = call(any_server, schema, model, **cached)
        assert hit["cached"] is True
        assert value_order(hit["json_payload"]) == schema_order(schema)
    assert len(fake.requests) == 2



def test_a_stored_function_and_its_examples_keep_the_callers_order(any_server: Any, fake: Any) -> None:
    """What the store gives back (the function's schema, a dataset entry shown as a demonstration)
    is in the order it was written, on Postgres too (where `jsonb` would reorder it)."""
    made = post(f"{any_server.url}/v2/functions", {"name": f"ordered-{uuid.uuid4().hex[:8]}",
                                                   "instructions": "Judge.", "output_schema": REASONED})
    assert made.status == 201, made.body
    function = made.json()
    example = {"thoughts": "t", "steps": [{"why": "w", "action": "a", "effect": "e"}],
               "verdict": {"score": 1, "label": "l", "reason": "r"}, "answer": "x"}
    entry = post(f"{any_server.url}/v2/datasets/{function['dataset_id']}", {"input": "an example", "output": example})
    assert entry.status == 200, entry.body
    reply = post(f"{any_server.url}/v2/functions/{function['id']}/call", {"input": "judge this"})
    assert reply.status == 200, reply.body
    sent = fake.requests[-1].json
    assert schema_order(sent["response_format"]["json_schema"]["schema"]) == schema_order(REASONED)
    demonstration = next(message["content"] for message in sent["messages"] if message["role"] == "assistant")
    assert value_order(json.loads(demonstration)) == value_order(example)
    assert value_order(reply.json()["json_payload"]) == schema_order(REASONED)


def test_calling_with_the_schema_in_another_order_makes_a_new_revision_in_that_order(any_server: Any,
                                                                                     fake: Any) -> None:
    """Only the property order differs (`required` is the same list), so only the order can tell them apart."""
    name = f"ordered-{uuid.uuid4().hex[:8]}"
    fields = {"thoughts": {"type": "string"}, "answer": {"type": "string"}}
    first = {"type": "object", "properties": fields, "required": ["thoughts", "answer"]}
    second = {**first, "properties": dict(reversed(fields.items()))}
    for schema in (first, second):
        reply = post(f"{any_server.url}/v2/call", {"name": name, "input": "judge this", "output_schema": schema})
        assert reply.status == 200, reply.body
        assert list(reply.json()["json_payload"]) == list(schema["properties"])
    details = get(f"{any_server.url}/v3/functions/{name}").json()
    assert details["revision_id"] == 2
    assert list(details["output_schema"]["properties"]) == ["answer", "thoughts"]
