"""JSON Schemas of the wire bodies: the building blocks the body schemas are written with, and
the gate that checks a request body against its schema before a handler sees it.

The same dicts are published in the OpenAPI document and compiled here, so what the document
says a body may be is exactly what the server lets through. The gate only answers "is this the
right shape"; the handlers' parsers still turn a body into a Task and check what a schema cannot
say (a name that is not blank, a time that parses, a parent span that exists).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jsonschema_rs
from jsonschema_rs import ValidationErrorKind as Kind

from taskgate.errors import BadRequestError

JsonSchema = dict[str, Any]

ANY: JsonSchema = {}  # any JSON value
STRING: JsonSchema = {"type": "string"}
INTEGER: JsonSchema = {"type": "integer"}
NUMBER: JsonSchema = {"type": "number"}
BOOLEAN: JsonSchema = {"type": "boolean"}
OBJECT: JsonSchema = {"type": "object"}
DATE_TIME: JsonSchema = {"type": "string", "format": "date-time"}
NON_BLANK = r"\S"  # a pattern: at least one character that is not white space


def nullable(schema: JsonSchema) -> JsonSchema:
    """`schema` or null: the request parsers take a null field as an absent one, and responses
    send null where a value is unknown."""
    if "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    widened = {**schema, "type": [*types, "null"]}
    if "enum" in schema:
        widened["enum"] = [*schema["enum"], None]
    return widened


def obj(properties: Mapping[str, JsonSchema], required: Iterable[str] = (), **keywords: Any) -> JsonSchema:
    """An object with these properties; fields it does not name are allowed (clients send extras
    such as `guard` or `hints`, and responses may grow)."""
    schema: JsonSchema = {"type": "object", "properties": dict(properties)}
    names = list(required)
    if len(set(names)) != len(names) or not set(names) <= set(properties):
        raise ValueError(f"required fields must be distinct properties: {names}")
    if names:
        schema["required"] = names
    return {**schema, **keywords}


def array(items: JsonSchema, **keywords: Any) -> JsonSchema:
    return {"type": "array", "items": items, **keywords}


def text(description: str, **keywords: Any) -> JsonSchema:
    return {"type": "string", "description": description, **keywords}


class BodyGate:
    """A request-body schema compiled once, on its first body; `check` raises a 400 naming the first
    problem. Compiled on first use rather than at import: every v3 operation has a gate, and the
    compiled validators of all of them cost each worker about 3 MB, most for endpoints it never serves."""

    __slots__ = ("_compiled", "_schema")

    def __init__(self, schema: JsonSchema) -> None:
        self._schema = schema
        self._compiled: jsonschema_rs.Draft202012Validator | None = None

    @property
    def _validator(self) -> jsonschema_rs.Draft202012Validator:
        if self._compiled is None:
            self._compiled = jsonschema_rs.Draft202012Validator(self._schema, validate_formats=False)
        return self._compiled

    def check(self, body: Any) -> None:
        if self._validator.is_valid(body):
            return
        error = next(iter(self._validator.iter_errors(body)))
        raise BadRequestError(describe(error, self._schema))


def describe(error: jsonschema_rs.ValidationError, schema: JsonSchema) -> str:
    """`'<json path>' <problem>`, worded for a person. It never quotes the offending value: that
    could be megabytes, or text the caller should not see echoed."""
    error = _closest(error)
    kind = error.kind
    if isinstance(kind, Kind.Required):
        return f"{where([*error.instance_path, kind.property])} is required"
    subject = where(error.instance_path)
    if isinstance(kind, Kind.OneOfNotValid | Kind.AnyOf):
        return f"{subject} must be {_alternatives(kind.context, schema, error.schema_path)}"
    return f"{subject} {_problem(kind)}"


def where(path: Sequence[str | int]) -> str:
    """`tools[0].name` style, as the hand parsers word it; the body itself when the path is empty."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return f"'{out}'" if out else "the request body"


def _closest(error: jsonschema_rs.ValidationError) -> jsonschema_rs.ValidationError:
    """For a value that fits none of several forms, the error of the form it was meant to be: a
    form whose type it has, and of those the one whose error lies deepest."""
    kind = error.kind
    if not isinstance(kind, Kind.OneOfNotValid | Kind.AnyOf):
        return error
    depth = len(error.instance_path)
    meant = [branch[0] for branch in kind.context
             if branch and not (isinstance(branch[0].kind, Kind.Type) and len(branch[0].instance_path) == depth)]
    if not meant:
        return error
    return _closest(max(meant, key=lambda candidate: len(candidate.instance_path)))


def _alternatives(context: list[list[jsonschema_rs.ValidationError]], schema: JsonSchema,
                  schema_path: Sequence[str | int]) -> str:
    """What a value that fits none of the forms should have been: the forms' own description
    when the schema has one, otherwise their types."""
    description = _at(schema, schema_path[:-1]).get("description")
    if description:
        return str(description)
    types: list[str] = []
    for branch in context:
        for error in branch:
            if isinstance(error.kind, Kind.Type):
                types += [name for name in error.kind.types if name not in types]
    return _type_words(types) if types else "one of the documented forms"


def _at(schema: Any, path: Sequence[str | int]) -> dict[str, Any]:
    for part in path:
        schema = schema[part]
    return schema if isinstance(schema, dict) else {}


_ARTICLES = {"array": "an array", "object": "an object", "integer": "an integer", "null": "null"}


def _type_words(types: Sequence[str]) -> str:
    words = [_ARTICLES.get(name, f"a {name}") for name in sorted(types, key=lambda name: name == "null")]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _problem(kind: Any) -> str:
    """The problem of one failed keyword, for the kinds our schemas use; a generic line otherwise."""
    match kind:
        case Kind.Type(types=types):
            return f"must be {_type_words(types)}"
        case Kind.Enum(options=options):
            return f"must be one of {', '.join('null' if option is None else str(option) for option in options)}"
        case Kind.MinLength(limit=1) | Kind.MinItems(limit=1):
            return "must not be empty"
        case Kind.MinLength(limit=limit):
            return f"must be at least {limit} characters long"
        case Kind.MaxLength(limit=limit):
            return f"must be at most {limit} characters long"
        case Kind.MinItems(limit=limit):
            return f"must have at least {limit} items"
        case Kind.MaxItems(limit=limit):
            return f"must have at most {limit} items"
        case Kind.Minimum(limit=limit):
            return f"must be at least {limit}"
        case Kind.Maximum(limit=limit):
            return f"must be at most {limit}"
        case Kind.Pattern(pattern=pattern):
            return "must not be blank" if pattern == NON_BLANK else f"must match the pattern {pattern}"
        case Kind.PropertyNames():
            return "has a field name that is not allowed"
        case Kind.AdditionalProperties(unexpected=unexpected):
            return f"has unknown fields: {', '.join(unexpected)}"
    return "does not match its schema"
