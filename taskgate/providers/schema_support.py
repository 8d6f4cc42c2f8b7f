"""Which JSON Schemas a provider can enforce natively, and the names they may carry.

OpenAI's strict mode accepts only a subset of JSON Schema and rejects the whole request when a
schema strays outside it, so we ask for strict mode only when the schema provably fits; the
engine validates the final object either way. Whether it fits is worked out once per distinct
schema (`openai_json_schema`), since callers send the same schema with every call.

The strict form keeps the caller's property order (and `required` as written): the model writes
fields in the order the schema lists them, so sorting would change the answer. The schemas are
therefore told apart by their JSON as written, never by a sorted form.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from taskgate.lru import PARSED_JSON_FACTOR, BoundedLRU
from taskgate.providers.base import StructuredOutput

# Keywords OpenAI strict mode accepts; anything else (patternProperties, if/then/else, allOf,
# oneOf, not, default, minLength, uniqueItems, ...) makes the request fail.
_ALLOWED_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "const",
    "$ref", "$defs", "definitions", "description", "title",
    "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minItems", "maxItems",
})
_ALLOWED_FORMATS = frozenset({
    "date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid",
})
_TYPE_DEFINING = ("type", "$ref", "anyOf", "enum", "const")
MAX_DEPTH = 10
MAX_PROPERTIES = 5000
_UNSAFE_NAME = re.compile(r"[^a-zA-Z0-9_-]")
STRICT_FORMS = 512  # distinct schemas whose strict-mode decision is kept
STRICT_FORMS_BYTES = 32 * 1024 * 1024
_NOT_STRICT: dict[str, Any] = {}  # cached for a schema that does not fit (the cache's own None means "not seen")


def _strict_form_bytes(key: bytes, form: dict[str, Any]) -> int:
    return len(key) * (1 + PARSED_JSON_FACTOR) if form is not _NOT_STRICT else len(key)


_strict_forms: BoundedLRU[bytes, dict[str, Any]] = BoundedLRU(STRICT_FORMS, STRICT_FORMS_BYTES, _strict_form_bytes)


def openai_json_schema(structured: StructuredOutput) -> dict[str, Any]:
    """The `response_format.json_schema` for `structured`: its strict-mode form, marked strict, when
    the schema can be made to fit OpenAI's subset without changing its meaning, else the caller's
    schema as it is. Decided once per distinct schema: a repeat costs a look-up by `structured.key`
    (the schema's JSON as written, so two property orders are two entries).
    """
    key = structured.key if structured.key is not None else orjson.dumps(structured.schema)
    form = _strict_forms.get(key)
    if form is None:
        # Built from a private copy of the schema: the cached form must not share the caller's objects.
        form = strict_variant(orjson.loads(key)) or _NOT_STRICT
        _strict_forms.put(key, form)
    strict = form is not _NOT_STRICT
    return {"name": safe_schema_name(structured.name), "schema": form if strict else structured.schema,
            "strict": strict}


def safe_schema_name(name: str | None) -> str:
    """A name OpenAI and Anthropic accept for a schema or tool (`^[a-zA-Z0-9_-]{1,64}$`)."""
    cleaned = _UNSAFE_NAME.sub("_", name or "")[:64]
    return cleaned or "output"


def fits_openai_strict(schema: Any) -> bool:
    """True when OpenAI strict mode accepts `schema` as it is."""
    if not isinstance(schema, dict) or schema.get("type") != "object" or "anyOf" in schema:
        return False
    counter = [0]
    return _fits(schema, 0, counter) and counter[0] <= MAX_PROPERTIES


def strict_variant(schema: Any) -> dict[str, Any] | None:
    """`schema` made strict-mode ready without changing which objects it accepts, or None.

    The one safe rewrite: an object whose properties are all required and which does not say
    whether extra keys are allowed gets `additionalProperties: false`. Optional properties,
    open objects and free-form maps cannot be expressed in strict mode, so those give None.
    """
    if not isinstance(schema, dict):
        return None
    variant = _close_objects(schema)
    if variant is None:
        return None
    variant.pop("$schema", None)  # a dialect marker, not a constraint
    return variant if fits_openai_strict(variant) else None


def _fits(node: Any, depth: int, counter: list[int]) -> bool:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return False
    if any(key not in _ALLOWED_KEYWORDS for key in node):
        return False
    if not any(key in node for key in _TYPE_DEFINING):
        return False
    if "$ref" in node and not (isinstance(node["$ref"], str) and node["$ref"].startswith("#")):
        return False  # never reached from the engine, which refuses such schemas; never sent either way
    if "format" in node and node["format"] not in _ALLOWED_FORMATS:
        return False
    if "properties" in node or _has_type(node, "object"):
        properties = node.get("properties", {})
        if not isinstance(properties, dict) or node.get("additionalProperties") is not False:
            return False
        if set(node.get("required") or ()) != set(properties):
            return False
        counter[0] += len(properties)
        if not all(_fits(sub, depth + 1, counter) for sub in properties.values()):
            return False
    if "items" in node and not _fits(node["items"], depth + 1, counter):
        return False
    if "anyOf" in node:
        options = node["anyOf"]
        if not isinstance(options, list) or not all(_fits(sub, depth + 1, counter) for sub in options):
            return False
    for group in ("$defs", "definitions"):
        defs = node.get(group, {})
        if not isinstance(defs, dict) or not all(_fits(sub, 0, counter) for sub in defs.values()):
            return False
    return True


def _has_type(node: dict[str, Any], name: str) -> bool:
    kind = node.get("type")
    return kind == name or (isinstance(kind, list) and name in kind)


def _close_objects(node: dict[str, Any]) -> dict[str, Any] | None:
    """Copy `node`, adding `additionalProperties: false` where that changes nothing but the label."""
    out = dict(node)
    if "properties" in node or _has_type(node, "object"):
        properties = node.get("properties")
        if not isinstance(properties, dict) or not properties:
            return None  # a free-form map: strict mode would force it to be empty
        if set(node.get("required") or ()) != set(properties):
            return None
        if "additionalProperties" not in node:
            out["additionalProperties"] = False
        elif node["additionalProperties"] is not False:
            return None
        closed = {}
        for key, sub in properties.items():
            if not isinstance(sub, dict) or (sub_out := _close_objects(sub)) is None:
                return None
            closed[key] = sub_out
        out["properties"] = closed
    if isinstance(node.get("items"), dict):
        items = _close_objects(node["items"])
        if items is None:
            return None
        out["items"] = items
    if isinstance(node.get("anyOf"), list):
        options = [_close_objects(sub) if isinstance(sub, dict) else None for sub in node["anyOf"]]
        if any(sub is None for sub in options):
            return None
        out["anyOf"] = options
    for group in ("$defs", "definitions"):
        if isinstance(node.get(group), dict):
            defs = {
                key: _close_objects(sub) if isinstance(sub, dict) else None
                for key, sub in node[group].items()
            }
            if any(sub is None for sub in defs.values()):
                return None
            out[group] = defs
    return out
