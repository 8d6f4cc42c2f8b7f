"""The JSON Schemas callers send (draft 2020-12, jsonschema-rs): checked, compiled and cached.

Every schema a caller sends (input and output schemas, tool parameters) goes through
`compile_schema`, once per distinct content: callers send the same schemas on every call, and
compiling costs far more than the ~1 µs a validation takes. A hit costs the schema's JSON bytes
(orjson, under 1 µs per KB) and a dict look-up; `bench/request_checks.py` measures it.

A schema is known by its JSON as the caller wrote it, keys in the caller's order: property order is
part of its meaning (a `thoughts` field before `answer` makes the model reason first), and the
adapters derive what they send upstream from that identity (`StructuredOutput.key`). The same schema
in two orders is two entries, each compiled once.

Schemas are self-contained. jsonschema-rs resolves a `$ref` to `file:` or `http(s):` by reading
the file or fetching the URL, on the event loop, and puts what it found in its error messages;
so before anything is compiled, every reference must point inside the document (`#...`), and
the validator is built `offline` so that even a reference this check missed cannot do I/O.

A hostile schema is bounded in size and in time. Compiling holds the GIL from start to end
(measured: a compile in a worker thread stalls the event loop just as long), so a thread with a
timeout would not free the loop, and a Rust compile cannot be interrupted. The time limit is
therefore enforced in advance, by the limits below, which keep the costliest schemas we could
build under 20-25 ms of CPU for check and compile (bench/request_checks.py (3) measures
them); that is paid once per distinct schema, and is less than orjson takes to parse a few MB of
request body. A compile that still takes longer than `COMPILE_CPU_LIMIT_S` is refused and
remembered as refused, so whatever the limits missed is paid once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import orjson

from taskgate.errors import SchemaError
from taskgate.lru import BoundedLRU
from taskgate.schema_bounds import (
    format_path,
    schema_refusal,
)

log = logging.getLogger("taskgate.engine")

# Each limit bounds one driver of compile time, measured with jsonschema-rs 0.61 on this project's
# 2-core VM (about 1 µs of compile per object or array, a superlinear cost for chains of
# references, and up to 1.5 ms per distinct pattern at the regex size limit).
MAX_SCHEMA_BYTES = 256 * 1024  # compact JSON; a 1,000-field object schema is about 180 KB

# The regex crate's default (10 MB compiled) took up to 50 ms per pattern to compile, and matching
# such a pattern ran at 18 ms per KB of input; at 256 KiB, compiling takes about 1.5 ms at most.
REGEX_SIZE_LIMIT = 256 * 1024
# Per match, for patterns with look-around or back-references (fancy-regex backtracks for those):
# about 0.15 ms at most, where its default of 1,000,000 steps took 14 ms per string matched.
REGEX_BACKTRACK_LIMIT = 10_000
COMPILE_CPU_LIMIT_S = 0.1  # well above what the limits allow: it catches only what they missed
CACHE_ENTRIES = 512
CACHE_BYTES = 64 * 1024 * 1024
# A compiled validator holds about 20 times its schema's JSON size, plus a few KB (measured by RSS).
_VALIDATOR_BYTES_PER_SCHEMA_BYTE = 20
_ENTRY_OVERHEAD_BYTES = 4096

_PATTERN_OPTIONS = jsonschema_rs.FancyRegexOptions(  # the lazy DFA's cache stays at the regex crate's default
    backtrack_limit=REGEX_BACKTRACK_LIMIT, size_limit=REGEX_SIZE_LIMIT, dfa_size_limit=2 * 1024 * 1024
)
_REGEX_HINT = (
    f" (a pattern must be a regular expression whose compiled form fits in {REGEX_SIZE_LIMIT // 1024} KiB; "
    "a counted repetition of a large class, such as \\p{L}{50}, does not)"
)


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """A checked schema's validator, and its compact JSON in the caller's key order: the schema's
    identity for the caches that adapters keep per distinct schema (`StructuredOutput.key`)."""

    validator: jsonschema_rs.Draft202012Validator
    source: bytes


# Every distinct schema seen lately, by its JSON as written: compiled, or refused and kept as the reason
# (without the field name, which differs between callers).
def _entry_bytes(key: bytes, entry: CompiledSchema | str) -> int:
    """What a cached schema holds: its JSON, and a validator about 20 times that size."""
    validator = len(key) * _VALIDATOR_BYTES_PER_SCHEMA_BYTE if isinstance(entry, CompiledSchema) else 0
    return len(key) + validator + _ENTRY_OVERHEAD_BYTES


checked_schemas: BoundedLRU[bytes, CompiledSchema | str] = BoundedLRU(CACHE_ENTRIES, CACHE_BYTES, _entry_bytes)


def canonical(value: Any) -> bytes:
    """Stable bytes for hashing and cache keys: sorted keys, no whitespace. Never what is sent or
    shown: sorting loses the caller's property order (see `as_written`)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def as_written(value: Any) -> bytes:
    """Compact JSON that keeps every object's keys in the caller's order: the identity of a schema."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def compile_schema(schema: Any, what: str) -> CompiledSchema:
    """The compiled `schema`, or a SchemaError that names `what` and the problem.

    Refusals are cached like validators, so a repeated bad schema costs a look-up. A schema over
    `MAX_SCHEMA_BYTES` is refused without being cached (keeping it would hold its bytes); its
    repeat costs its JSON bytes, which is less than parsing it from the body cost.
    """
    if not isinstance(schema, (dict, bool)):
        raise SchemaError(f"{what} must be a JSON Schema object, not {type(schema).__name__}")
    key = as_written(schema)
    entry = checked_schemas.get(key)
    if entry is None:
        if len(key) > MAX_SCHEMA_BYTES:
            raise SchemaError(f"{what} is {len(key)} bytes of JSON; the limit is {MAX_SCHEMA_BYTES} bytes")
        entry = _check_and_compile(schema, key)
        checked_schemas.put(key, entry)
    if isinstance(entry, str):
        raise SchemaError(f"{what} {entry}")
    return entry


def _check_and_compile(schema: Any, key: bytes) -> CompiledSchema | str:
    """The compiled schema, or the reason it is refused (completing "<field> ...")."""
    refusal = schema_refusal(schema)
    if refusal is not None:
        return refusal
    started = time.thread_time()
    try:
        validator = jsonschema_rs.Draft202012Validator(
            schema, validate_formats=False, offline=True, pattern_options=_PATTERN_OPTIONS
        )
    except jsonschema_rs.ValidationError as exc:
        return f"does not compile: {_compile_problem(exc)}"
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        return f"does not compile: {_first_line(exc)}"
    spent = time.thread_time() - started
    if spent > COMPILE_CPU_LIMIT_S:
        log.warning("refused a schema of %d bytes that took %.0f ms to compile", len(key), spent * 1000)
        return f"took {spent * 1000:.0f} ms to compile; the limit is {COMPILE_CPU_LIMIT_S * 1000:.0f} ms"
    return CompiledSchema(validator, key)


def _compile_problem(exc: jsonschema_rs.ValidationError) -> str:
    """jsonschema-rs's complaint about the schema, with where it is and, for a pattern, a hint."""
    problem = _first_line(exc)
    if exc.instance_path:  # empty for a reference that leads nowhere: "at $" would mislead
        problem = f"at {format_path(exc.instance_path)}: {problem}"
    if isinstance(exc.kind, jsonschema_rs.ValidationErrorKind.Format) and problem.endswith('"regex"'):
        problem += _REGEX_HINT
    return problem


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def validation_errors(validator: jsonschema_rs.Draft202012Validator, value: Any, limit: int = 10) -> list[str]:
    """Human- and model-readable errors, each prefixed with the JSON path that failed."""
    try:
        if validator.is_valid(value):
            return []
        errors = []
        for error in validator.iter_errors(value):
            errors.append(f"at {format_path(error.instance_path)}: {error.message}")
            if len(errors) >= limit:
                break
    except ValueError as exc:  # jsonschema-rs refuses values nested about 255 levels deep
        return [f"the value could not be checked: {_first_line(exc)}"]
    return errors


