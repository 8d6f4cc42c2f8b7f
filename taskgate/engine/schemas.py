"""Compiling and checking JSON Schemas (draft 2020-12, jsonschema-rs), with compiled validators cached.

A schema is compiled once per distinct content: callers send the same schemas on every call,
and compiling costs far more than the ~1 µs a validation takes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import jsonschema_rs
import orjson

from taskgate.errors import SchemaError

_CACHE_SIZE = 512
_validators: OrderedDict[bytes, jsonschema_rs.Draft202012Validator] = OrderedDict()


def canonical(value: Any) -> bytes:
    """Stable bytes for hashing and cache keys: sorted keys, no whitespace."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def compile_schema(schema: Any, what: str) -> jsonschema_rs.Draft202012Validator:
    """A validator for `schema`, or a SchemaError that names `what` and the problem."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaError(f"{what} must be a JSON Schema object, not {type(schema).__name__}")
    key = canonical(schema)
    validator = _validators.get(key)
    if validator is not None:
        _validators.move_to_end(key)
        return validator
    try:
        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=False)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise SchemaError(f"{what} does not compile: {first_line}") from exc
    _validators[key] = validator
    if len(_validators) > _CACHE_SIZE:
        _validators.popitem(last=False)
    return validator


def validation_errors(validator: jsonschema_rs.Draft202012Validator, value: Any, limit: int = 10) -> list[str]:
    """Human- and model-readable errors, each prefixed with the JSON path that failed."""
    if validator.is_valid(value):
        return []
    errors = []
    for error in validator.iter_errors(value):
        errors.append(f"at {format_path(error.instance_path)}: {error.message}")
        if len(errors) >= limit:
            break
    return errors


def format_path(parts: Any) -> str:
    """['people', 0, 'name'] -> '$.people[0].name'."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
