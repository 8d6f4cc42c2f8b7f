"""Metadata filters of a knowledge query or delete: `[{field, operation, value}]`, all of which a
document's metadata must pass (AND).

Operations: `=` and `!=` compare any JSON value; `>` and `<` compare numbers with numbers and
strings with strings (a document whose value is of the other kind, or missing, does not pass);
`in` takes a list and passes when the document's value is one of it. A missing field is not equal
to anything, so it passes `!=`. Anything else is a 400 before the search runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskgate.errors import BadRequestError

OPERATIONS = ("=", "!=", ">", "<", "in")
MAX_FILTERS = 32
MAX_IN_VALUES = 1000
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    operation: str
    value: Any


def parse_filters(raw: Any) -> list[Filter]:
    """The request's `filters` (absent or null: none), checked."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequestError("'filters' must be an array of {field, operation, value} or null")
    if len(raw) > MAX_FILTERS:
        raise BadRequestError(f"'filters' may hold at most {MAX_FILTERS} filters")
    return [_filter(item, f"filters[{index}]") for index, item in enumerate(raw)]


def _filter(item: Any, where: str) -> Filter:
    if not isinstance(item, dict):
        raise BadRequestError(f"{where} must be an object {{field, operation, value}}")
    field, operation, value = item.get("field"), item.get("operation"), item.get("value", _MISSING)
    if not isinstance(field, str) or not field:
        raise BadRequestError(f"{where}.field must be a non-empty string")
    if operation not in OPERATIONS:
        raise BadRequestError(f"{where}.operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    if value is _MISSING:
        raise BadRequestError(f"{where}.value is required")
    if operation == "in":
        if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
            raise BadRequestError(f"{where}.value must be an array of at most {MAX_IN_VALUES} values for 'in'")
    elif operation in (">", "<") and not (_number(value) or isinstance(value, str)):
        raise BadRequestError(f"{where}.value must be a number or a string for '{operation}'")
    elif isinstance(value, dict | list):
        raise BadRequestError(f"{where}.value must be a string, number, boolean or null for '{operation}'")
    return Filter(field, operation, value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not 1, and 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def passes(metadata: dict[str, Any], filters: list[Filter]) -> bool:
    return all(_passes(metadata.get(f.field, _MISSING), f) for f in filters)


def _passes(actual: Any, f: Filter) -> bool:
    if f.operation == "=":
        return actual is not _MISSING and _same(actual, f.value)
    if f.operation == "!=":
        return actual is _MISSING or not _same(actual, f.value)
    if f.operation == "in":
        return actual is not _MISSING and any(_same(actual, option) for option in f.value)
    comparable = (_number(actual) and _number(f.value)) or (isinstance(actual, str) and isinstance(f.value, str))
    if not comparable:
        return False
    return bool(actual > f.value) if f.operation == ">" else bool(actual < f.value)
