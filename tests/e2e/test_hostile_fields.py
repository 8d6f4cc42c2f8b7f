"""Wrong types for every field of every endpoint, read from each dialect's parser.

Each case is an accepted body with one field replaced (or removed) and is refused by the rule of
`tests/hostile.py`: a 4xx JSON error, with nothing sent upstream. v2 answers body validation with
422 (what opperai 1.7.2 raises as a validation error); v3, spans and the compat endpoints say 400
or 422, and only a 4xx is asserted there. The tables are long on purpose: one row per field and
wrong value, so a failure names both.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.hostile import (
    BODY_ENDPOINTS,
    CHAT_EP,
    EMBEDDINGS_EP,
    FUNCTION_PATH,
    REFUSALS,
    V2_CALL_EP,
    V2_SPAN_EP,
    V2_SPAN_PATCH_EP,
    V2_STREAM_EP,
    V3_BATCH_EP,
    V3_CALL_EP,
    V3_EXAMPLE_EP,
    V3_FN_CALL_EP,
    V3_FN_PUT_EP,
    V3_FN_STREAM_EP,
    V3_SPAN_EP,
    V3_SPAN_PATCH_EP,
    V3_STREAM_EP,
    Endpoint,
    Probe,
)

pytestmark = pytest.mark.timeout(60)

SERVER_ENV: dict[str, str] = {}
MISSING = object()  # the field is left out of the body
V2_VALIDATION = {422}
MODEL = "openai/gpt-4o-mini"

NOT_STRINGS = [42, True, ["x"], {"a": "b"}]
NOT_OBJECTS = [42, "x", True, ["x"]]
NOT_LISTS = [42, "x", {"a": "b"}]
NOT_BOOLS = ["true", 1, {}]
NOT_INTEGERS = ["5", 1.5, True, []]
NOT_NUMBERS = ["0.5", True, {}]
NOT_TIMES = [42, {}, "yesterday", "2024-13-45T00:00:00", "2024-01-01T25:00:00Z"]
REQUIRED_STRING = [MISSING, None, "", "   ", *NOT_STRINGS]
BAD_MODELS = [
    42, True, {}, "", "   ", [42], [[MODEL]], {"name": 5}, {"options": {}}, {"name": ""},
    {"name": MODEL, "options": []}, {"name": MODEL, "options": "x"},
    {"name": MODEL, "extra_headers": []}, {"name": MODEL, "extra_headers": {"X-A": 5}},
    "nonexistent-provider/model", [MODEL, 42],
]
BAD_V3_TOOLS = [
    *NOT_LISTS, [42], ["t"], [{}], [{"name": 5}], [{"name": ""}], [{"description": "d"}],
    [{"name": "t", "parameters": []}], [{"name": "t", "parameters": "x"}], [{"name": "t", "description": 5}],
]


def _cases(endpoints: tuple[Endpoint, ...], fields: dict[str, list[Any]],
           statuses: frozenset[int] | set[int] = REFUSALS) -> list[Any]:
    return [
        pytest.param(endpoint, field, value, statuses, id=f"{endpoint}:{field}={_label(value)}")
        for endpoint in endpoints for field, values in fields.items() for value in values
    ]


def _label(value: Any) -> str:
    if value is MISSING:
        return "missing"
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 80 else f"{text[:70]}...({len(text)} chars)"


def _with(body: Any, field: str, value: Any) -> Any:
    """`body` with `field` set to `value` (or removed); a dotted `a.b` sets inside the object `a`,
    and a field of an array body is set in its first item."""
    if isinstance(body, list):
        return [_with(body[0], field, value), *body[1:]]
    changed = dict(body)
    outer, dot, inner = field.partition(".")
    if dot and outer == "configuration":
        changed[outer] = _with(changed.get(outer, {}), inner, value)
    elif value is MISSING:
        changed.pop(field, None)
    else:
        changed[field] = value
    return changed


V2_FIELDS: dict[str, list[Any]] = {
    "name": REQUIRED_STRING,
    "instructions": NOT_STRINGS,
    "input_schema": NOT_OBJECTS,
    "output_schema": NOT_OBJECTS,
    "examples": [*NOT_LISTS, [42], ["x"], [{"input": 1}], [{"output": 1}], [{"input": 1, "output": 2, "comment": 5}]],
    "configuration": NOT_OBJECTS,
    "configuration.invocation.cache.ttl": [*NOT_INTEGERS, -1],
    "configuration.invocation.structured_generation.max_attempts": [*NOT_INTEGERS, 0, -1],
    "configuration.beta.invocation.input_validation.enabled": NOT_BOOLS,
    "tags": NOT_OBJECTS,
    "parent_span_id": [42, True, [], {}],
}
V2_CALLS = (V2_CALL_EP, V2_STREAM_EP)

V3_FIELDS: dict[str, list[Any]] = {
    "input": [MISSING],
    "instructions": NOT_STRINGS,
    "input_schema": NOT_OBJECTS,
    "output_schema": NOT_OBJECTS,
    "tools": BAD_V3_TOOLS,
    "parent_span_id": [42, True, [], {}],
    "reasoning_effort": [42, True, [], {}, "extreme", ""],
    "stream": NOT_BOOLS,
}
V3_CALLS = (V3_CALL_EP, V3_STREAM_EP, V3_FN_CALL_EP, V3_FN_STREAM_EP)

SPAN_FIELDS: dict[str, list[Any]] = {
    "name": REQUIRED_STRING,
    "id": [*NOT_STRINGS, ""],
    "trace_id": [*NOT_STRINGS, ""],
    "parent_id": [42, True, [], {}],
    "type": NOT_STRINGS,
    "start_time": NOT_TIMES,
    "end_time": NOT_TIMES,
    "error": NOT_STRINGS,
    "meta": NOT_OBJECTS,
    "metadata": NOT_OBJECTS,
    "tags": NOT_OBJECTS,
    "score": NOT_NUMBERS,
}
SPAN_PATCH_FIELDS: dict[str, list[Any]] = {
    "name": ["", "   ", *NOT_STRINGS],
    **{key: SPAN_FIELDS[key] for key in ("type", "start_time", "end_time", "error", "meta", "metadata", "tags",
                                         "score")},
}

CHAT_FIELDS: dict[str, list[Any]] = {
    "messages": [
        MISSING, None, [], "hello", {}, [42], ["hello"], [{}], [{"content": "x"}],
        [{"role": "wizard", "content": "x"}], [{"role": 5, "content": "x"}], [{"role": "user"}],
        [{"role": "user", "content": 42}], [{"role": "user", "content": {}}], [{"role": "user", "content": [42]}],
        [{"role": "user", "content": [{"text": "x"}]}], [{"role": "user", "content": [{"type": "text"}]}],
        [{"role": "user", "content": [{"type": "text", "text": 5}]}],
        [{"role": "user", "content": [{"type": "image_url"}]}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}],
        [{"role": "tool", "content": "x"}], [{"role": "tool", "content": "x", "tool_call_id": 5}],
        [{"role": "user", "content": "x", "tool_calls": []}],
        [{"role": "assistant", "content": None, "tool_calls": "x"}],
        [{"role": "assistant", "content": None, "tool_calls": [{"id": 5}]}],
        [{"role": "assistant", "content": None,
          "tool_calls": [{"id": "c", "type": "function", "function": {"name": "t", "arguments": {}}}]}],
        [{"role": "user", "content": "x", "name": 5}],
    ],
    "model": BAD_MODELS,
    "fallback_models": [*NOT_LISTS, [42], [{}]],
    "tools": [
        *NOT_LISTS, [42], [{}], [{"type": "retrieval"}], [{"type": "function"}],
        [{"type": "function", "function": "t"}], [{"type": "function", "function": {"name": "bad name!"}}],
        [{"type": "function", "function": {"name": "x" * 65}}],
        [{"type": "function", "function": {"name": "t", "parameters": []}}],
        [{"type": "function", "function": {"name": "t", "description": 5}}],
        [{"type": "function", "function": {"name": "t"}}, {"type": "function", "function": {"name": "t"}}],
    ],
    "tool_choice": [42, True, [], {}, "sometimes", "required", {"type": "function"},
                    {"type": "function", "function": {"name": "undeclared"}}],
    "stream": NOT_BOOLS,
    "stream_options": NOT_OBJECTS,
    "tags": NOT_OBJECTS,
    "parent_span_id": [42, True, [], {}],
    "output_schema": NOT_OBJECTS,
    "response_format": [
        *NOT_OBJECTS, {}, {"type": "xml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": "x"},
        {"type": "json_schema", "json_schema": {"schema": 42}},
    ],
    **{key: NOT_NUMBERS for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty")},
    **{key: NOT_INTEGERS for key in ("max_tokens", "max_completion_tokens", "seed", "top_logprobs")},
    "stop": [42, True, {}, [42], [None]],
    "n": [17, 0, -1, "1", True, 1.5, 2**40],
    "logprobs": ["yes", 1, []],
    "parallel_tool_calls": ["yes", 1, []],
    "store": ["yes", 1, []],
    "user": [42, True, [], {}],
    "metadata": NOT_OBJECTS,
    "logit_bias": NOT_OBJECTS,
}

EMBEDDING_FIELDS: dict[str, list[Any]] = {
    "model": [MISSING, None, "", 42, [], {}, True, "nonexistent-provider/model", "no-provider-prefix"],
    "input": [MISSING, None, 42, True, {}, [], [42], [None], [[1, 2]]],
    "encoding_format": ["hex", 42, True, []],
    "dimensions": [0, -1, "8", 1.5, True, []],
    "user": [42, True, [], {}],
    "tags": NOT_OBJECTS,
}

CASES = [
    *_cases(V2_CALLS, {key: V2_FIELDS[key] for key in V2_FIELDS if key != "model"}, V2_VALIDATION),
    *_cases(V2_CALLS, {"model": BAD_MODELS}),
    *_cases((V3_CALL_EP, V3_STREAM_EP), {"name": REQUIRED_STRING}),
    *_cases(V3_CALLS, {**V3_FIELDS, "model": BAD_MODELS}),
    *_cases((V3_FN_PUT_EP,), {"source": REQUIRED_STRING}),
    *_cases((V3_EXAMPLE_EP, V3_BATCH_EP), {"input": [MISSING], "output": [MISSING], "tag": NOT_STRINGS,
                                           "comment": NOT_STRINGS}),
    *_cases((V2_SPAN_EP, V3_SPAN_EP), SPAN_FIELDS),
    *_cases((V2_SPAN_PATCH_EP, V3_SPAN_PATCH_EP), SPAN_PATCH_FIELDS),
    *_cases((CHAT_EP,), CHAT_FIELDS),
    *_cases((EMBEDDINGS_EP,), EMBEDDING_FIELDS),
]


@pytest.mark.parametrize(("endpoint", "field", "value", "statuses"), CASES)
def test_a_wrong_value_is_refused(probe: Probe, endpoint: Endpoint, field: str, value: Any,
                                  statuses: frozenset[int]) -> None:
    body = _with(endpoint.body, field, value)
    probe.refused(probe.send(endpoint.method, endpoint.path, body), statuses)


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
def test_an_object_without_any_field_is_refused_unless_nothing_is_required(probe: Probe, endpoint: Endpoint) -> None:
    """`{}`: a PATCH changes nothing and is accepted; everything else lacks a required field."""
    reply = probe.send(endpoint.method, endpoint.path, {})
    if endpoint.method == "PATCH":
        probe.stored(endpoint, reply)
    else:
        probe.refused(reply)


BATCH_BODIES = {
    "object": {"input": "q", "output": "a"},
    "empty": [],
    "numbers": [1, 2],
    "strings": ["q"],
    "nulls": [None],
    "over-the-batch-limit": [{"input": "q", "output": "a"}] * 1001,
}


@pytest.mark.parametrize("case", sorted(BATCH_BODIES))
def test_a_batch_that_is_not_a_list_of_examples_is_refused(probe: Probe, case: str) -> None:
    probe.refused(probe.send("POST", f"{FUNCTION_PATH}/examples/batch", BATCH_BODIES[case]))


QUERIES = [
    (path, name, value)
    for path in ("/v3/functions", f"{FUNCTION_PATH}/examples", "/v3/traces")
    for name in ("limit", "offset")
    for value in ("abc", "1.5", "true", "[]", "0x10", "1e3", "%00")
]


@pytest.mark.parametrize(("path", "name", "value"), QUERIES)
def test_a_query_integer_that_is_not_an_integer_is_refused(probe: Probe, path: str, name: str, value: str) -> None:
    probe.refused(probe.send("GET", f"{path}?{name}={value}"))
