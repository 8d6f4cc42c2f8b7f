"""Nesting depth is checked when a body is parsed: a 400 naming the limit, never a 500 or a span that is lost.

JSON nested 300 levels deep in an input, metadata, example or schema used to give a 500
(orjson serialises about 254 levels, Python recursion gave up elsewhere), and `POST /v3/spans`
answered 200 with the id of a span that was never stored.
"""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from taskgate.errors import BadRequestError
from taskgate.json_text import MAX_JSON_DEPTH, json_depth
from taskgate.server.request_io import check_json_depth, parse_json_body
from tests.harness import ServerProcess
from tests.http_client import get, post

VALIDATE = {"beta.invocation.input_validation.enabled": True}
USER = [{"role": "user", "content": "hi"}]


def nested(levels: int) -> Any:
    """A value `levels` deep, alternating arrays and objects (0 is a plain string)."""
    value: Any = "leaf"
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


# ---- where a deep value can go: (path, body) with a value `levels` deep in it

PLACES = {
    "v2 input": lambda v: ("/v2/call", {"name": "deep", "input": v}),
    "v2 example input": lambda v: ("/v2/call", {"name": "deep", "input": "x", "examples": [{"input": v, "output": 1}]}),
    "v2 tags": lambda v: ("/v2/call", {"name": "deep", "input": "x", "tags": {"t": v}}),
    "v2 output_schema": lambda v: ("/v2/call", {"name": "deep", "input": "x", "output_schema": v}),
    "v2 input_schema": lambda v: ("/v2/call", {"name": "deep", "input": "x", "input_schema": v,
                                               "configuration": VALIDATE}),
    "v3 input": lambda v: ("/v3/call", {"name": "deep", "input": v}),
    "v3 example": lambda v: ("/v3/functions/deep/examples", {"input": v, "output": "y"}),
    "v3 span input": lambda v: ("/v3/spans", {"name": "deep", "input": v}),
    "v3 span metadata": lambda v: ("/v3/spans", {"name": "deep", "metadata": {"m": v}}),
    "v2 span input": lambda v: ("/v2/spans", {"name": "deep", "input": v}),
    # Opper's `tags`: OpenAI's `metadata` is an object of strings, which cannot nest
    "compat tags": lambda v: ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", "messages": USER,
                                                              "tags": {"t": v}}),
    "compat schema": lambda v: ("/v3/compat/chat/completions", {
        "model": "openai/gpt-4o-mini", "messages": USER,
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": v}}}),
}
SCHEMA_PLACES = {"v2 output_schema", "v2 input_schema", "compat schema"}


PLACEHOLDER = "@@deep@@"


def deep_request(place: str, levels: int, **extra: Any) -> tuple[str, bytes]:
    """The path and body for `place` with a value `levels` deep, written as text (too deep for
    json.dumps), plus `extra` top-level fields."""
    if place in SCHEMA_PLACES:
        deep = '{"items": ' * (levels - 1) + '{"type": "string"}' + "}" * (levels - 1)
    else:
        opening = "".join('{"k": ' if level % 2 == 0 else "[" for level in range(levels))
        closing = "".join("}" if level % 2 == 0 else "]" for level in reversed(range(levels)))
        deep = opening + '"leaf"' + closing
    path, body = PLACES[place](PLACEHOLDER)
    return path, json.dumps({**body, **extra}).replace(json.dumps(PLACEHOLDER), deep).encode()


@pytest.mark.parametrize("levels", [300, 5000])
@pytest.mark.parametrize("place", PLACES)
def test_deep_bodies_are_a_400_that_names_the_limit(server: ServerProcess, fake: Any, place: str, levels: int) -> None:
    path, body = deep_request(place, levels)
    reply = post(f"{server.url}{path}", raw=body)
    assert reply.status == 400, reply.body[:300]
    error = reply.json()["error"]
    assert error["code"] == "bad_request"
    assert f"levels deep; the limit is {MAX_JSON_DEPTH}" in error["message"]
    assert fake.requests == []


def test_the_deep_bodies_are_as_deep_as_they_say() -> None:
    for place in PLACES:
        assert json_depth(deep_request(place, 300)[1]) > 300
        assert json_depth(deep_request(place, 5)[1]) < 20
        parse_json_body(deep_request(place, 5)[1])


def test_a_deep_span_is_refused_rather_than_acknowledged_and_lost(server: ServerProcess) -> None:
    span_id = f"deep-span-{random.getrandbits(64)}"
    for place in ("v3 span input", "v3 span metadata"):
        path, body = deep_request(place, 300, id=span_id)
        assert post(f"{server.url}{path}", raw=body).status == 400
        assert get(f"{server.url}/v3/spans/{span_id}").status == 404


def test_bodies_at_the_limit_work_everywhere(server: ServerProcess, fake: Any) -> None:
    at_limit = nested(MAX_JSON_DEPTH - 1)  # inside the body object: MAX_JSON_DEPTH levels in all
    call = post(f"{server.url}/v2/call", {"name": "deep-ok", "input": at_limit})
    assert call.status == 200, call.body[:300]
    assert get(f"{server.url}/v3/spans/{call.json()['span_id']}").json()["data"]["input"] == at_limit
    v3 = post(f"{server.url}/v3/call", {"name": "deep-ok", "input": at_limit})
    assert v3.status == 200, v3.body[:300]
    span = post(f"{server.url}/v3/spans", {"name": "deep-ok", "input": at_limit})
    assert span.status == 200, span.body[:300]
    assert get(f"{server.url}/v3/spans/{span.json()['data']['id']}").json()["data"]["input"] == at_limit
    compat = post(f"{server.url}/v3/compat/chat/completions",
                  {"model": "openai/gpt-4o-mini", "messages": USER, "tags": nested(MAX_JSON_DEPTH - 1)})
    assert compat.status == 200, compat.body[:300]
    over = post(f"{server.url}/v2/call", {"name": "deep-ok", "input": nested(MAX_JSON_DEPTH)})
    assert over.status == 400


def test_a_deeply_nested_validated_input_just_under_the_limit_is_checked(server: ServerProcess) -> None:
    schema = {"type": "object", "properties": {"k": {"type": "array"}}, "required": ["k"]}
    value = nested(MAX_JSON_DEPTH - 1)
    body = {"name": "deep-validated", "input": value, "input_schema": schema, "configuration": VALIDATE}
    assert post(f"{server.url}/v2/call", body).status == 200
    body["input"] = {"k": "not an array"}
    assert post(f"{server.url}/v2/call", body).status == 400


# ---- the check itself


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


TRICKY_STRINGS = ["[", "]", "{[", "}]]", '"', '\\"[', "\\\\", "\\\\\"]", "\\", "\\n]", "é[\u2028", "", '""]']


def random_value(rng: random.Random, levels: int) -> Any:
    if levels == 0:
        return rng.choice([*TRICKY_STRINGS, 1, None, 2.5, True])
    if rng.random() < 0.5:
        return [random_value(rng, levels - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(TRICKY_STRINGS) + str(i): random_value(rng, levels - 1) for i in range(rng.randint(0, 3))}


def test_json_depth_matches_a_recursive_count_whatever_the_strings_hold() -> None:
    rng = random.Random(13)
    for index in range(3000):
        value = random_value(rng, rng.randint(0, 9))
        text = orjson.dumps(value) if index % 2 else json.dumps(value, indent=1, ensure_ascii=index % 3 == 0).encode()
        assert json_depth(text) == reference_depth(value), text


def test_the_limit_is_exact_and_brackets_in_strings_do_not_count() -> None:
    check_json_depth(orjson.dumps(nested(MAX_JSON_DEPTH)))
    with pytest.raises(BadRequestError, match=f"{MAX_JSON_DEPTH + 1} levels deep; the limit is {MAX_JSON_DEPTH}"):
        check_json_depth(orjson.dumps(nested(MAX_JSON_DEPTH + 1)))
    check_json_depth(orjson.dumps({"text": "[{" * 10_000, "list": [["]"]] * 500}))
    with pytest.raises(BadRequestError, match="5000 levels deep"):
        parse_json_body(b"[" * 5000 + b"]" * 5000)


def test_invalid_json_still_says_so() -> None:
    with pytest.raises(BadRequestError, match="not valid JSON"):
        parse_json_body(b'{"a": [1, 2}')
    with pytest.raises(BadRequestError, match="empty"):
        parse_json_body(b"  \n")


def test_a_model_answer_nested_too_deeply_is_asked_again_not_a_500(server: ServerProcess, fake: Any) -> None:
    """A permissive schema (`{}`) lets any JSON through; an answer 300 deep would have failed when
    its span was written. It is refused like any misfit: the model is asked again."""
    from tests.fakes.common import Behaviour

    deep = json.dumps(nested(300))
    fake.script("gpt-4o-mini", Behaviour(text=deep), Behaviour(json={"ok": True}))
    body = {"name": "deep-answer", "input": "x", "output_schema": {}}
    reply = post(f"{server.url}/v2/call", body)
    assert reply.status == 200 and reply.json()["json_payload"] == {"ok": True}
    asked_again = fake.requests[-1].json["messages"][-1]["content"]
    assert f"at most {MAX_JSON_DEPTH} are allowed" in asked_again

    fake.script("gpt-4o-mini", *[Behaviour(text=deep)] * 2)
    failed = post(f"{server.url}/v2/call", {**body, "configuration": {
        "invocation.structured_generation.max_attempts": 2}})
    assert failed.status == 400 and failed.json()["type"] == "StructuredGenerationError"


def test_deep_tool_arguments_are_passed_on_as_text(server: ServerProcess, fake: Any) -> None:
    from tests.fakes.common import Behaviour

    fake.script("gpt-4o-mini", Behaviour(tool_calls=[("lookup", json.dumps(nested(300)))]))
    tool = {"name": "lookup", "parameters": {"type": "object"}}
    reply = post(f"{server.url}/v3/call", {"name": "deep-tool", "input": "x", "tools": [tool]})
    assert reply.status == 200
    arguments = reply.json()["meta"]["tool_calls"][0]["arguments"]
    assert isinstance(arguments, str) and json_depth(arguments.encode()) == 300
