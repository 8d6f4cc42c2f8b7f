"""What the body depth check and the schema check cost on the `/v2/call` path (issue 13).

Every body goes through `check_json_depth` before it is parsed, and every schema through
`compile_schema`, whose cache hit is all a repeated schema costs (the `$ref` check runs on a
miss only). In process, no server:

1. per call: the depth check of a realistic /v2/call body (about 2 KB, with an input_schema and
   an output_schema that uses `$defs`), the check for integers beyond 64 bits, both schemas'
   look-ups, and the three together, median and p99 in µs against the target (together <= 20 µs);
   orjson's parse of the same body for scale;
2. the exact depth walk, for bodies whose opening brackets outnumber the limit (a 60-message
   chat, a list of 1,000 records, 10 MB of small objects), next to the integer check and
   orjson's parse of each;
3. what a first sight costs: the `$ref` check and the compile of that body's schemas, and of the
   costliest schemas the limits allow (the worst case the event loop can be held by a compile).

    .venv/bin/python -m bench.request_checks [--calls 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import collector_paused
from taskgate.engine.schemas import MAX_SCHEMA_BYTES, checked_schemas, compile_schema
from taskgate.errors import SchemaError
from taskgate.json_text import MAX_JSON_DEPTH, json_depth
from taskgate.schema_bounds import MAX_SCHEMA_NODES, MAX_SCHEMA_PATTERNS, MAX_SCHEMA_REFERENCES, schema_refusal
from taskgate.server.request_io import check_json_depth, check_json_integers

TARGET_US = 20.0

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Full name as written in the text"},
        "role": {"type": "string", "enum": ["author", "reviewer", "editor", "other"]},
        "email": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
    },
    "required": ["name", "role", "email"],
}
INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 200},
        "body": {"type": "string", "description": "The article text"},
        "language": {"type": "string", "pattern": "^[a-z]{2}$"},
        "published": {"type": "string", "format": "date"},
    },
    "required": ["title", "body"],
}
OUTPUT_SCHEMA = {
    "$defs": {"Person": PERSON},
    "type": "object",
    "properties": {
        "summary": {"type": "string", "description": "Two sentences at most"},
        "people": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "maxItems": 20},
        "topics": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
    },
    "required": ["summary", "people", "topics", "sentiment"],
    "additionalProperties": False,
}
V2_CALL = {
    "name": "articles/extract",
    "instructions": "Extract a summary, the people named with their role, the topics and the sentiment.",
    "input": {
        "title": "Quarterly report",
        "body": "Ada Lovelace (author) and Grace Hopper (reviewer) looked at the figures. " * 6,
        "language": "en",
        "published": "2026-11-30",
    },
    "input_schema": INPUT_SCHEMA,
    "output_schema": OUTPUT_SCHEMA,
    "model": "openai/gpt-4o-mini",
    "configuration": {"beta.invocation.input_validation.enabled": True, "invocation.cache.ttl": 0},
    "tags": {"team": "research", "source": "bench"},
}


def _samples_us(action: Callable[[], Any], count: int) -> list[float]:
    clock = time.perf_counter_ns
    samples = []
    with collector_paused():
        for _ in range(count):
            start = clock()
            action()
            samples.append((clock() - start) / 1000)
    return sorted(samples)


def _median_p99(samples: list[float]) -> dict[str, float]:
    return {"median_us": round(statistics.median(samples), 2), "p99_us": round(samples[int(len(samples) * 0.99)], 2)}


def _best_us(action: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        action()
        best = min(best, (time.perf_counter_ns() - start) / 1000)
    return round(best, 1)


def per_call(calls: int) -> dict[str, Any]:
    """(1): the checks as `/v2/call` runs them on every call, the schemas already seen."""
    body = orjson.dumps(V2_CALL)
    parsed = orjson.loads(body)

    def schemas() -> None:
        compile_schema(parsed["output_schema"], "output_schema")
        compile_schema(parsed["input_schema"], "input_schema")

    def together() -> None:
        check_json_depth(body)
        check_json_integers(body)
        schemas()

    schemas()  # the first sight, measured in (3)
    figures: dict[str, Any] = {"body_bytes": len(body), "opening_brackets": body.count(b"[") + body.count(b"{")}
    for name, action in (("depth", lambda: check_json_depth(body)), ("integers", lambda: check_json_integers(body)),
                         ("schemas", schemas), ("together", together), ("orjson_parse", lambda: orjson.loads(body))):
        figures[name] = _median_p99(_samples_us(action, calls))
    figures["meets_target"] = figures["together"]["p99_us"] <= TARGET_US
    return figures


def _chat(messages: int) -> dict[str, Any]:
    turns = [{"role": "user" if n % 2 else "assistant", "content": [{"type": "text", "text": "Tell me more.\n" * 20}]}
             for n in range(messages)]
    return {"model": "openai/gpt-4o-mini", "messages": turns}


def exact_walk() -> list[dict[str, Any]]:
    """(2): bodies the bracket count cannot settle."""
    bodies = {
        "chat of 60 messages": orjson.dumps(_chat(60)),
        "input of 1,000 records": orjson.dumps({"name": "x", "input": [{"id": n, "tags": ["a"]} for n in range(1000)]}),
        "10 MB of small objects": orjson.dumps({"input": [{"n": "x" * 10, "v": n, "t": ["a", "b"]}
                                                          for n in range(220_000)]}),
    }
    rows = []
    for name, body in bodies.items():
        repeats = 3 if len(body) > 1_000_000 else 200
        rows.append({
            "body": name, "bytes": len(body), "depth": json_depth(body),
            "check_us": _best_us(lambda body=body: check_json_depth(body), repeats),  # type: ignore[misc]
            "integers_us": _best_us(lambda body=body: check_json_integers(body), repeats),  # type: ignore[misc]
            "orjson_parse_us": _best_us(lambda body=body: orjson.loads(body), repeats),  # type: ignore[misc]
        })
    return rows


def _limit_schemas() -> dict[str, Any]:
    """The costliest schemas we found that the limits still allow, one per cost driver."""
    field = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 10}, "b": {"type": "integer"},
                                              "c": {"enum": ["x", "y", "z"]}}, "required": ["a", "b"]}
    fields = 1
    while len(orjson.dumps({"properties": {f"field_{n}": field for n in range(fields * 2)}})) < MAX_SCHEMA_BYTES:
        fields *= 2
    return {
        "1st sight of the bench body's output_schema": OUTPUT_SCHEMA,
        f"{fields:,} object fields": {"type": "object", "properties": {f"field_{n}": field for n in range(fields)}},
        f"{MAX_SCHEMA_NODES - 2:,} empty subschemas": {"anyOf": [{} for _ in range(MAX_SCHEMA_NODES - 2)]},
        f"chain of {MAX_SCHEMA_REFERENCES:,} references": {
            "$defs": {str(n): {"$ref": f"#/$defs/{n + 1}"} for n in range(MAX_SCHEMA_REFERENCES - 1)}
            | {str(MAX_SCHEMA_REFERENCES - 1): {"type": "string"}},
            "$ref": "#/$defs/0",
        },
        f"{MAX_SCHEMA_PATTERNS} distinct patterns at the regex size limit": {
            "properties": {str(n): {"pattern": f"(?:\\w|\\d|\\s){{290}}{n}"} for n in range(MAX_SCHEMA_PATTERNS)}
        },
        f"{MAX_SCHEMA_PATTERNS} distinct patterns just over the regex size limit": {
            "properties": {str(n): {"pattern": f"[\\p{{L}}]{{7}}x{n}"} for n in range(MAX_SCHEMA_PATTERNS)}
        },
    }


def _best_cpu_ms(action: Callable[[], Any], repeats: int = 3) -> float:
    """Least CPU time of `repeats` runs: what the work costs, without another process's share."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        action()
        best = min(best, time.thread_time() - start)
    return round(best * 1000, 2)


def first_sight() -> list[dict[str, Any]]:
    """(3): the `$ref` check alone, then check and compile on a cold cache, as CPU time (best of 3)."""
    rows = []
    for name, schema in _limit_schemas().items():
        outcome = ["compiled"]

        def cold_compile(schema: Any = schema, outcome: list[str] = outcome) -> None:
            checked_schemas.drain()
            try:
                compile_schema(schema, "schema")
            except SchemaError as exc:
                outcome[0] = "refused: " + exc.detail[:70]

        rows.append({"schema": name, "bytes": len(orjson.dumps(schema)),
                     "ref_check_cpu_ms": _best_cpu_ms(lambda schema=schema: schema_refusal(schema)),  # type: ignore[misc]
                     "check_and_compile_cpu_ms": _best_cpu_ms(cold_compile), "outcome": outcome[0]})
    checked_schemas.drain()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    calls = per_call(args.calls)
    print(f"(1) per /v2/call: a {calls['body_bytes']} B body with {calls['opening_brackets']} opening brackets "
          f"(limit {MAX_JSON_DEPTH}), input_schema and output_schema already seen")
    for name in ("depth", "integers", "schemas", "together", "orjson_parse"):
        print(f"    {name:14} median {calls[name]['median_us']:7.2f} µs   p99 {calls[name]['p99_us']:7.2f} µs")
    verdict = "ok" if calls["meets_target"] else "OVER"
    print(f"    together p99 {calls['together']['p99_us']:.2f} µs, target <= {TARGET_US:.0f} µs: {verdict}")
    walks = exact_walk()
    print("(2) exact depth walk (more opening brackets than the limit), best of several")
    for row in walks:
        print(f"    {row['body']:24} {row['bytes']:>10,} B  depth {row['depth']:3}  check {row['check_us']:>10,.1f} µs"
              f"  integers {row['integers_us']:>9,.1f} µs  orjson parse {row['orjson_parse_us']:>10,.1f} µs")
    sights = first_sight()
    print("(3) first sight of a schema: $ref check, and check + compile (CPU), best of 3")
    for row in sights:
        print(f"    {row['schema']:52} {row['bytes']:>8,} B  check {row['ref_check_cpu_ms']:6.2f} ms  "
              f"check+compile {row['check_and_compile_cpu_ms']:7.2f} ms  {row['outcome']}")
    print(orjson.dumps({"per_call": calls, "exact_walk": walks, "first_sight": sights}).decode())


if __name__ == "__main__":
    main()
