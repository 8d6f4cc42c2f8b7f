"""Which schemas may use OpenAI strict mode, and the safe rewrite that makes more of them fit."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from taskgate.providers.schema_support import fits_openai_strict, safe_schema_name, strict_variant


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
