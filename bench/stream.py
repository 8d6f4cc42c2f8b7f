"""What the v2 stream adds over streaming straight from the upstream (issue 3).

(a) the incremental JSON path parser every structured stream goes through (bench.jsonpath_bench);
(b) `POST /v2/call/stream` vs the floor (bench.floor_app, a bare pass-through relaying the fake's
    chunks as they come) vs `stream: true` to the fake directly, at concurrency 1 in alternating
    blocks, with the fake sending 54 content deltas per answer (as in shared/perf-notes.md):
    time to the first byte of the body, to the first content delta, and to the end of the stream.
    Added = Taskgate percentile - direct percentile. Target: added p99 <= 2 ms. Taskgate - floor
    is what Taskgate adds over any Python pass-through.

The v2 stream's first event is `{"span_id"}`, which the server sends only once the upstream has
produced output, so its first byte comes just before its first delta; straight from the fake and
through the floor the first byte is the empty role chunk, sent before any content. Compare first
deltas, not first bytes, between Taskgate and the floor.

    .venv/bin/python -m bench.stream [--requests 2000] [--block 10] [--profile /tmp/stream.prof]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import hotspots
from bench.common import (
    CPU_HEADER,
    LATENCY_HEADER,
    Sampler,
    Stack,
    Timings,
    added,
    bench_stack,
    cpu_columns,
    gateway_headers,
    interleaved_with_cpu,
    keepalive_session,
    latency_row,
    openai_delta,
    placement,
    run,
    sse_payloads,
    stack_ready,
    streamer,
    upstream_body,
    upstream_headers,
)
from bench.jsonpath_bench import bench_parser

TARGET_ADDED_P99_MS = 2.0
STREAM_EVENTS = 54
OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "number"},
    },
    "required": ["title", "summary", "keywords", "score"],
}
PLAIN_CALL: dict[str, Any] = {"name": "bench-stream", "instructions": "Greet the user.", "input": "Say hello."}
SCHEMA_CALL: dict[str, Any] = {
    "name": "bench-stream-schema",
    "instructions": "Summarise the text.",
    "input": {"text": "A short text to summarise."},
    "output_schema": OUTPUT_SCHEMA,
}
KINDS = ("first_byte", "first_delta", "whole_stream")


def v2_delta(data: bytes) -> bool:
    """A v2 StreamingChunk carrying a delta (text or json_path); the `{"span_id"}` head does not."""
    return any("delta" in event for event in sse_payloads(data))


Sides = tuple[Sampler[Timings], Sampler[Timings], Sampler[Timings]]  # direct, floor, taskgate


def sides_for(session: aiohttp.ClientSession, stack: Stack, call: dict[str, Any]) -> Sides:
    direct = streamer(session, stack.upstream_chat_url, upstream_body(call, stream=True), upstream_headers(),
                      openai_delta)
    floor = streamer(session, f"{stack.floor.url}/v2/call/stream", call, gateway_headers(), openai_delta)
    gateway = streamer(session, f"{stack.gateway.url}/v2/call/stream", call, gateway_headers(), v2_delta)
    return direct, floor, gateway


async def latency(stack: Stack, sides: Sides, args: argparse.Namespace) -> dict[str, Any]:
    """Added p50/p99 for each of the three moments, plus both servers' CPU per streamed call."""
    (direct, floor, gateway), (floor_cpu, gateway_cpu) = await interleaved_with_cpu(
        (stack.floor, stack.gateway), sides, args.warmup, args.requests, args.block)
    figures: dict[str, Any] = {
        kind: added([d[i] for d in direct], [f[i] for f in floor], [g[i] for g in gateway])
        for i, kind in enumerate(KINDS)
    }
    figures["floor_cpu_ms_per_call"] = floor_cpu
    figures["taskgate_cpu_ms_per_call"] = gateway_cpu
    return figures


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    async with keepalive_session(4) as session:
        await stack_ready(session, stack)
        plain = sides_for(session, stack, PLAIN_CALL)
        schema = sides_for(session, stack, SCHEMA_CALL)
        summary: dict[str, Any] = {"c1_plain": await latency(stack, plain, args),
                                   "c1_output_schema": await latency(stack, schema, args)}
        if args.profile is not None:
            raw = Path(args.profile)
            with hotspots.recording(stack.gateway.proc.pid, raw):
                for _ in range(args.requests):
                    await plain[2]()
                    await schema[2]()
        return summary


def report(parser_figures: dict[str, Any], streams: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"(a) JSON path parser: {parser_figures['median_us_per_chunk']:.2f} µs median "
          f"({parser_figures['p99_us_per_chunk']:.2f} µs p99) per {parser_figures['chunk_chars']}-char chunk of a "
          f"{parser_figures['document_chars'] / 1000:.0f} KB document; 100 KB / 10 KB time ratio "
          f"{parser_figures['linearity_ratio_100kb_vs_10kb']:.2f} for a size ratio of "
          f"{parser_figures['size_ratio_100kb_vs_10kb']:.2f} (linear ≈ equal)")
    print(f"(b) POST /v2/call/stream vs the floor (bare pass-through) vs stream:true to the fake directly: "
          f"concurrency 1, {args.requests} requests each after {args.warmup} warm-up, alternating blocks of "
          f"{args.block}, {STREAM_EVENTS} deltas per answer ({placement()}); ms. fl/tg + = added over direct, "
          f"tg-fl = Taskgate minus floor, cpu = ms per streamed call")
    print(f"{LATENCY_HEADER}{CPU_HEADER}")
    for mode, key in (("no output_schema", "c1_plain"), ("output_schema", "c1_output_schema")):
        for kind in KINDS:
            print(latency_row(f"{mode}: {kind.replace('_', ' ')}", streams[key][kind], TARGET_ADDED_P99_MS))
        print(f"{mode + ': cpu per streamed call':<{len(LATENCY_HEADER)}}"
              + cpu_columns(streams[key]["floor_cpu_ms_per_call"], streams[key]["taskgate_cpu_ms_per_call"]))
    if args.profile is not None:
        print(f"server profile (py-spy, {args.requests} streams of each kind), raw stacks in {args.profile}:")
        for line in hotspots.summarise(Path(args.profile)):
            print("  " + line)
    summary = {
        "bench": "stream",
        "requests": args.requests,
        "stream_events": STREAM_EVENTS,
        "parser": parser_figures,
        **streams,
        "target_added_p99_ms": TARGET_ADDED_P99_MS,
        "meets_target": all(
            streams[key][kind]["added_p99_ms"] <= TARGET_ADDED_P99_MS
            for key in ("c1_plain", "c1_output_schema")
            for kind in ("first_byte", "first_delta")
        ),
        "taskgate_over_floor_p99_ms": max(  # first delta: the floor's first byte is the role chunk
            streams[key]["first_delta"]["taskgate_over_floor_p99_ms"] for key in ("c1_plain", "c1_output_schema")
        ),
    }
    print(orjson.dumps(summary).decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="timed streams per side and mode (>= 500)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed streams per side first")
    parser.add_argument("--block", type=int, default=10, help="streams per side before switching sides")
    parser.add_argument("--profile", metavar="RAW_PATH", default=None,
                        help="afterwards, sample the server with py-spy and print its hot spots")
    args = parser.parse_args()
    parser_figures = bench_parser()  # before the servers start, so they do not compete with it
    with bench_stack(stream_events=STREAM_EVENTS) as stack:
        streams = run(measure(stack, args))
    report(parser_figures, streams, args)


if __name__ == "__main__":
    main()
