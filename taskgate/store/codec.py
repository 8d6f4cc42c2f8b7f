"""Turning records into rows and rows back into records, plus the hashing and text helpers the
repositories share."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.engine import RowMapping

from taskgate.store.base import ExampleRecord, FunctionDefinition, FunctionRecord, RevisionRecord, SpanRecord

_DEFINITION_FIELDS = tuple(f.name for f in fields(FunctionDefinition))


def utcnow() -> datetime:
    return datetime.now(UTC)


def json_dumps(value: Any) -> str:
    """orjson, tolerant of odd values (recording must not fail on a stray datetime or set)."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def pg_json_dumps(value: Any) -> str:
    """Postgres refuses NUL (\\u0000) in jsonb: drop that character rather than lose the row."""
    text = json_dumps(value)
    return json_dumps(strip_nul(value)) if "\\u0000" in text else text


def strip_nul(value: Any) -> Any:
    """`value` with every NUL character removed from its strings (keys included)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {strip_nul(key): strip_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strip_nul(item) for item in value]
    return value


def canonical_json(value: Any) -> bytes:
    """Sorted keys and no whitespace, so equal values give equal bytes whatever their key order."""
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def definition_to_json(definition: FunctionDefinition) -> dict[str, Any]:
    return asdict(definition)


def definition_from_json(data: dict[str, Any]) -> FunctionDefinition:
    known = {name: data[name] for name in _DEFINITION_FIELDS if name in data}
    if known.get("configuration") is None:
        known["configuration"] = {}
    return FunctionDefinition(**known)


def same_definition(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal whatever the key order, except the order of a schema's properties: that is part of its
    meaning (the model writes the fields in it), so reordering them is a new revision."""
    if canonical_json(a) != canonical_json(b):
        return False
    return all(property_orders(a.get(name)) == property_orders(b.get(name))
               for name in ("input_schema", "output_schema"))


def property_orders(schema: Any) -> list[list[str]]:
    """The property names of every object schema inside `schema`, each list in its written order."""
    found: list[list[str]] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                found.append(list(properties))
                pending.extend(properties.values())  # schemas; the map is no node (a property may be "properties")
            pending.extend(value for key, value in node.items() if key != "properties")
    return found


def schema_hash(definition: FunctionDefinition) -> str:
    """v3 `schema_hash`: identifies the function's contract (its input and output schemas)."""
    contract = {"input_schema": definition.input_schema, "output_schema": definition.output_schema}
    return hashlib.sha256(canonical_json(contract)).hexdigest()[:16]


def search_text(value: Any) -> str:
    """The words of a value for full-text indexing: strings and scalars of every leaf, keys left out
    (all examples of a function share them, so they would only blur the ranking)."""
    return " ".join(_leaves(value)).replace("\x00", "")


def _leaves(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield str(value)


def function_from_row(row: RowMapping) -> FunctionRecord:
    """`row` joins a function with its current revision (the `definition` column)."""
    return FunctionRecord(
        id=row["id"], project_id=row["project_id"], name=row["name"],
        definition=definition_from_json(row["definition"]), revision_id=row["current_revision_id"],
        revision_number=row["revision_number"], schema_hash=row["schema_hash"],
        created_at=row["created_at"], updated_at=row["updated_at"], hit_count=row["hit_count"],
        few_shot_count=row["few_shot_count"], dataset_id=row["dataset_id"],
    )


def revision_from_row(row: RowMapping, current_id: str) -> RevisionRecord:
    return RevisionRecord(
        id=row["id"], function_id=row["function_id"], number=row["number"],
        definition=definition_from_json(row["definition"]), schema_hash=row["schema_hash"],
        created_at=row["created_at"], is_current=row["id"] == current_id,
    )


def example_from_row(row: RowMapping) -> ExampleRecord:
    return ExampleRecord(id=row["id"], function_id=row["function_id"], input=row["input"],
                         output=row["output"], tag=row["tag"], comment=row["comment"],
                         created_at=row["created_at"], expected=row["expected"])


def total_tokens(usage: dict[str, int]) -> int:
    if "total_tokens" in usage:
        return int(usage["total_tokens"] or 0)
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)


def span_from_row(row: RowMapping) -> SpanRecord:
    return SpanRecord(
        id=row["id"], trace_id=row["trace_id"], project_id=row["project_id"], name=row["name"],
        type=row["type"], parent_id=row["parent_id"], start_time=row["start_time"],
        end_time=row["end_time"], input=row["input"], output=row["output"], error=row["error"],
        status=row["status"], model_chain=row["model_chain"], model_used=row["model_used"],
        models_failed=row["models_failed"], attempts=row["attempts"], usage=row["usage"],
        cost=row["cost"], tags=row["tags"], meta=row["meta"], function_name=row["function_name"],
    )
