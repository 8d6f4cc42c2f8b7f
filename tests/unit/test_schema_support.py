"""Which schemas may use OpenAI strict mode, and the safe rewrite that makes more of them fit."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from taskgate.providers import schema_support
from taskgate.providers.base import ChatRequest, StructuredOutput
from taskgate.providers.openai_compat import build_body
from taskgate.providers.schema_support import (
    STRICT_FORMS,
    fits_openai_strict,
    openai_json_schema,
    safe_schema_name,
    strict_variant,
)


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), **extra}


STRICT = obj({
    "name": {"type": "string", "description": "who"},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    "kind": {"enum": ["a", "b"]},
    "when": {"type": ["string", "null"], "format": "date-time"},
    "child": {"$ref": "#/$defs/node"},
    "either": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
}, additionalProperties=False, **{"$defs": {"node": obj({"v": {"type": "number"}}, additionalProperties=False)}})


def test_a_fully_closed_schema_fits() -> None:
    assert fits_openai_strict(STRICT)


@pytest.mark.parametrize("mutate", [
    lambda s: s.pop("additionalProperties"),
    lambda s: s.update(additionalProperties=True),
    lambda s: s["required"].pop(),
    lambda s: s.update(patternProperties={"^x": {"type": "string"}}),
    lambda s: s["properties"].update(c={"if": {"type": "string"}, "then": {"type": "string"}}),
    lambda s: s["properties"]["name"].update(format="uri"),
    lambda s: s["properties"]["name"].update(default="x"),
    lambda s: s["properties"].update(anything={}),
    lambda s: s["$defs"]["node"].pop("additionalProperties"),
    lambda s: s["properties"]["tags"].update(items={"type": "object", "properties": {"a": {"type": "string"}}}),
    lambda s: s.update(type="array"),
])
def test_schemas_outside_the_subset_do_not_fit(mutate: Any) -> None:
    schema = copy.deepcopy(STRICT)
    mutate(schema)
    assert not fits_openai_strict(schema)


def test_root_must_be_an_object_and_depth_is_bounded() -> None:
    assert not fits_openai_strict({"anyOf": [obj({}, additionalProperties=False)]})
    assert not fits_openai_strict("not a schema")
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(12):
        deep = obj({"x": deep}, additionalProperties=False)
    assert not fits_openai_strict(deep)


def test_strict_variant_closes_objects_whose_properties_are_all_required() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **obj({
            "a": {"type": "string"},
            "b": obj({"c": {"type": "integer"}}),
            "list": {"type": "array", "items": obj({"d": {"type": "boolean"}})},
        }),
    }
    original = copy.deepcopy(schema)
    variant = strict_variant(schema)
    assert variant is not None and fits_openai_strict(variant)
    assert variant["additionalProperties"] is False
    assert variant["properties"]["b"]["additionalProperties"] is False
    assert variant["properties"]["list"]["items"]["additionalProperties"] is False
    assert "$schema" not in variant
    assert schema == original  # the caller's schema is not mutated


def test_strict_variant_of_an_already_strict_schema_is_equal() -> None:
    assert strict_variant(STRICT) == STRICT


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "string"}}},  # optional property
    obj({"a": {"type": "string"}}, additionalProperties=True),
    obj({"a": {"type": "string"}}, additionalProperties={"type": "string"}),
    {"type": "object"},  # a free-form map
    obj({"a": {"type": "string", "minLength": 2}}),  # unsupported keyword
    {"type": "string"},
    None,
])
def test_strict_variant_refuses_rewrites_that_would_change_meaning(schema: Any) -> None:
    assert strict_variant(schema) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("output", "output"), ("my.fn/answer v2", "my_fn_answer_v2"), ("", "output"), (None, "output"),
    ("x" * 80, "x" * 64),
])
def test_safe_schema_name(name: str | None, expected: str) -> None:
    assert safe_schema_name(name) == expected


# ---- the strict-mode decision, which the OpenAI-compatible adapter makes (the engine sends the caller's schema)


def test_the_adapter_asks_for_strict_mode_with_the_strict_form_when_the_schema_can_fit() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **obj({"a": {"type": "string"}})}
    body = build_body(ChatRequest(model="m", messages=[], structured=StructuredOutput(schema, "answer")), "openai")
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": obj({"a": {"type": "string"}}, additionalProperties=False), "strict": True}}
    assert "additionalProperties" not in schema  # the caller's schema is left as it was


def test_a_schema_that_cannot_fit_goes_as_the_caller_wrote_it_without_strict_mode() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}  # optional: strict mode would require it
    assert openai_json_schema(StructuredOutput(schema)) == {"name": "output", "schema": schema, "strict": False}
    assert openai_json_schema(StructuredOutput(schema))["schema"] is schema


def test_the_decision_is_made_once_per_distinct_schema_and_kept_within_bounds() -> None:
    schema = obj({"n": {"type": "integer"}})
    key = orjson.dumps(schema)  # as the engine gives it: compact, in the caller's key order
    first = openai_json_schema(StructuredOutput(schema, key=key))["schema"]
    assert openai_json_schema(StructuredOutput(copy.deepcopy(schema), key=key))["schema"] is first  # a look-up
    assert openai_json_schema(StructuredOutput(schema))["schema"] is first  # no key: the same one, worked out
    for n in range(STRICT_FORMS + 50):  # schemas a caller made up
        openai_json_schema(StructuredOutput(obj({f"field{n}": {"type": "integer"}})))
    assert len(schema_support._strict_forms) == STRICT_FORMS


def test_the_strict_form_keeps_the_callers_order_and_each_order_has_its_own() -> None:
    """With keys as the engine gives them (`compile_schema(...).source`): two orders, two forms."""
    from taskgate.engine.schemas import compile_schema

    item = obj({"why": {"type": "string"}, "action": {"type": "string"}})
    reasoned = obj({"thoughts": {"type": "string"}, "steps": {"type": "array", "items": item},
                    "verdict": obj({"score": {"type": "integer"}, "label": {"type": "string"}}),
                    "answer": {"type": "string"}})
    flipped = copy.deepcopy(reasoned)
    for node in (flipped, flipped["properties"]["steps"]["items"], flipped["properties"]["verdict"]):
        node["properties"] = dict(reversed(node["properties"].items()))
        node["required"].reverse()

    def order(node: dict[str, Any]) -> list[Any]:
        nested = [sub.get("items", sub) for sub in node["properties"].values()]
        return [node["required"], *[(name, order(sub)) for name, sub in zip(node["properties"], nested, strict=True)
                                    if "properties" in sub]]

    only_properties = copy.deepcopy(flipped)  # `required` as in `reasoned`: the orders differ in properties only
    for node, before in ((only_properties, reasoned), (only_properties["properties"]["steps"]["items"], item),
                         (only_properties["properties"]["verdict"], reasoned["properties"]["verdict"])):
        node["required"] = list(before["required"])
    for schema in (reasoned, flipped, only_properties, reasoned):
        key = compile_schema(schema, "output_schema").source
        sent = openai_json_schema(StructuredOutput(schema, key=key))
        assert sent["strict"] is True
        assert order(sent["schema"]) == order(schema)
        assert list(sent["schema"]["properties"]) == list(schema["properties"])
    assert compile_schema(reasoned, "s").source != compile_schema(flipped, "s").source
