"""A small deterministic generator of JSON Schema instances, for the fake providers.

A fake model that answers structured requests must answer with something valid, or every
structured test would exercise the re-ask path. Strings are multi-word on purpose so that a
streamed answer splits inside string values, as real model output does.
"""

from __future__ import annotations

import math
from typing import Any

SAMPLE_TEXT = "sample text value"
MAX_DEPTH = 6

_FORMATS: dict[str, str] = {
    "date-time": "2024-01-02T03:04:05Z",
    "date": "2024-01-02",
    "time": "03:04:05Z",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/resource",
    "uri-reference": "https://example.com/resource",
    "iri": "https://example.com/resource",
    "url": "https://example.com/resource",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
}


def instance_for(schema: Any, root: Any = None) -> Any:
    """A valid instance of `schema`; `$ref`s resolve against `root` (default: the schema itself)."""
    return _Generator(schema if root is None else root).make(schema, 0, 0)


class _Generator:
    def __init__(self, root: Any):
        self.root = root

    def make(self, schema: Any, depth: int, variant: int) -> Any:
        """`variant` makes sibling array items differ, so `uniqueItems` holds."""
        if schema is True or schema is None:
            return SAMPLE_TEXT
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            return self.make(self.resolve(schema["$ref"]), depth + 1, variant)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            values = schema["enum"]
            return values[variant % len(values)]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.make(_pick_option(schema[key]), depth + 1, variant)
        if "allOf" in schema:
            return self._all_of(schema, depth, variant)
        kind = _schema_type(schema)
        if kind == "object":
            return self._object(schema, depth, variant)
        if kind == "array":
            return self._array(schema, depth, variant)
        if kind == "string":
            return _string(schema, variant)
        if kind == "integer":
            return int(_number(schema, variant, integer=True))
        if kind == "number":
            return _number(schema, variant, integer=False)
        if kind == "boolean":
            return variant % 2 == 0
        if kind == "null":
            return None
        return SAMPLE_TEXT

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        node = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def _all_of(self, schema: dict[str, Any], depth: int, variant: int) -> Any:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self.resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
            if not isinstance(part, dict):
                continue
            for key, value in part.items():
                if key == "properties":
                    merged.setdefault("properties", {}).update(value)
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return self.make(merged, depth + 1, variant)

    def _object(self, schema: dict[str, Any], depth: int, variant: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        result = {}
        for name, sub in properties.items():
            # Past MAX_DEPTH only what is required is filled in, so recursive schemas terminate.
            if depth < MAX_DEPTH or name in required:
                result[name] = self.make(sub, depth + 1, variant)
        for name in required - result.keys():
            extra = schema.get("additionalProperties")
            result[name] = self.make(extra if isinstance(extra, dict) else True, depth + 1, variant)
        return result

    def _array(self, schema: dict[str, Any], depth: int, variant: int) -> list[Any]:
        prefix: list[Any] = schema.get("prefixItems") or []
        items = schema.get("items", True)
        minimum = int(schema.get("minItems", 0))
        maximum = schema.get("maxItems")
        count = max(minimum, len(prefix), 0 if depth >= MAX_DEPTH else 1)
        if maximum is not None:
            count = min(count, int(maximum))
        result = [self.make(prefix[i], depth + 1, variant + i) for i in range(min(count, len(prefix)))]
        if isinstance(items, list):  # draft 4-7 tuple form
            result += [self.make(items[i], depth + 1, variant + i) for i in range(min(count, len(items)))]
        elif items is not False:
            result += [self.make(items, depth + 1, variant + i) for i in range(len(result), count)]
        return result


def _schema_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        return non_null[0] if non_null else "null"
    if kind is not None:
        return str(kind)
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _pick_option(options: list[Any]) -> Any:
    """The first option that is not plain null, so optional fields still carry a value."""
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return option
    return options[0]


def _string(schema: dict[str, Any], variant: int) -> str:
    text = _FORMATS.get(str(schema.get("format", "")))
    if text is None:
        text = SAMPLE_TEXT if variant == 0 else f"{SAMPLE_TEXT} {variant}"
    minimum = int(schema.get("minLength", 0))
    while len(text) < minimum:
        text += " value"
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text


def _number(schema: dict[str, Any], variant: int, *, integer: bool) -> float:
    """A value inside the bounds; sibling variants step apart so array items stay unique."""
    step = schema.get("multipleOf") or (1 if integer else 0.5)
    low = schema.get("minimum")
    high = schema.get("maximum")
    ex_low = schema.get("exclusiveMinimum")
    ex_high = schema.get("exclusiveMaximum")
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
        low = ex_low + step if low is None else max(low, ex_low + step)
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
        high = ex_high - step if high is None else min(high, ex_high - step)
    value = 1 if integer else 1.5
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    if schema.get("multipleOf"):
        value = math.ceil(value / step) * step
    value += variant * step
    if high is not None and value > high:
        value -= 2 * variant * step
    return math.ceil(value) if integer else value
