"""What a caller's JSON Schema may hold before anything compiles it: references only within
itself, and a bounded size. A leaf, so that every consumer of caller schemas (the engine's
compiler, the local model's grammar) checks them the same way without importing upward.
"""

from __future__ import annotations

from typing import Any

MAX_SCHEMA_NODES = 10_000  # objects and arrays: about 10-15 ms of check and compile at most
MAX_SCHEMA_DEPTH = 64  # levels of objects and arrays: 32 levels of nested properties
MAX_SCHEMA_REFERENCES = 1_000  # a chain of 1,000 references compiles in about 7 ms
MAX_SCHEMA_PATTERNS = 16  # distinct regular expressions (equal ones are compiled once)

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_SCANNED_KEYWORDS = frozenset({*REFERENCE_KEYWORDS, "pattern", "patternProperties"})
# Where a node is, as a chain of (parent chain, key) pairs: O(1) per node, unrolled only for a message.
_Where = tuple[Any, Any] | None


def schema_refusal(schema: Any) -> str | None:
    """Why `schema` may not be compiled (completing "<field> ..."), or None when it may.

    Every object at every place in the document is looked at, not only where a keyword takes a
    subschema: an in-document pointer can make any value a schema (`{"$ref": "#/const", "const":
    {"$ref": "http://..."}}` fetches). So a `$ref`-like string in a `const` or `enum` value is
    refused too. A `$ref` that is not a string is left to the compiler, which refuses it; a
    property named `$ref` maps to a schema, not a string, and is not a reference. An `$id` may
    name any base: a reference starting with `#` resolves inside the resource that holds it,
    which is part of this document, and the offline compiler refuses anything else.
    """
    if not isinstance(schema, (dict, list)):
        return None
    nodes = references = 0
    patterns: set[str] = set()
    stack: list[tuple[Any, int, _Where]] = [(schema, 1, None)]
    while stack:  # iterative: a deep schema must not exhaust the Python stack
        node, depth, where = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            return f"has more than {MAX_SCHEMA_NODES} objects and arrays"
        if depth > MAX_SCHEMA_DEPTH:
            return f"is nested more than {MAX_SCHEMA_DEPTH} levels deep (at {format_path(_path(where))})"
        if type(node) is list:
            children: Any = enumerate(node)
        else:
            children = node.items()
            if not _SCANNED_KEYWORDS.isdisjoint(node):  # C speed: most nodes have none of them
                for keyword in REFERENCE_KEYWORDS:
                    target = node.get(keyword)
                    if isinstance(target, str):
                        references += 1
                        if not target.startswith("#"):
                            return _outside_reference(keyword, target, (where, keyword))
                if isinstance(pattern := node.get("pattern"), str):
                    patterns.add(pattern)
                if isinstance(pattern_properties := node.get("patternProperties"), dict):
                    patterns.update(pattern_properties)
        for key, value in children:
            if type(value) is dict or type(value) is list:
                stack.append((value, depth + 1, (where, key)))
    if references > MAX_SCHEMA_REFERENCES:
        return f"has {references} references; the limit is {MAX_SCHEMA_REFERENCES}"
    if len(patterns) > MAX_SCHEMA_PATTERNS:
        return f"has {len(patterns)} distinct patterns; the limit is {MAX_SCHEMA_PATTERNS}"
    return None


def _outside_reference(keyword: str, target: str, where: _Where) -> str:
    return (
        f"has {keyword} '{target[:200]}' at {format_path(_path(where))}: only references within the schema "
        "itself (starting with '#') are allowed; nothing is fetched or read"
    )


def _path(where: _Where) -> list[Any]:
    parts = []
    while where is not None:
        where, key = where
        parts.append(key)
    return parts[::-1]


def format_path(parts: Any) -> str:
    """['people', 0, 'name'] -> '$.people[0].name'."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
