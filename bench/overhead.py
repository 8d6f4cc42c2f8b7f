"""Latency and throughput that `POST /v2/call` adds over calling the upstream directly (issue 2).

Starts the fake upstream and `taskgate serve` as subprocesses and drives both over one keep-alive
aiohttp client. The direct baseline posts to the fake the very chat body Taskgate would send it.

1. concurrency 1, no output_schema: p50/p99 direct and via /v2/call, from alternating blocks;
2. the same with an output_schema (the fake answers with a valid instance);
3. requests per second at concurrency 32, direct vs /v2/call (best of --rounds, alternating).

Added = Taskgate percentile - direct percentile. Target: added p99 <= 2 ms at concurrency 1.
Each row also gives the server's CPU ms per call (from /proc), which other load on a shared
machine barely moves. Prints a table and, last, a one-line JSON summary.

    .venv/bin/python -m bench.overhead [--requests 2000] [--profile /tmp/overhead.prof]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import hotspots
from bench.common import (
    LATENCY_HEADER,
    Stack,
    Timed,
    added,
    bench_stack,
    cpu_seconds,
    gateway_headers,
    interleaved_with_cpu,
    keepalive_session,
    latency_row,
    placement,
    poster,
    requests_per_second,
    run,
    stack_ready,
    upstream_body,
    upstream_headers,
)

TARGET_ADDED_P99_MS = 2.0
OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "greeting": {"type": "string", "description": "A short greeting"},
        "language": {"type": "string"},
        "confidence": {"type": "number"},
    },
    "required": ["greeting", "language", "confidence"],
}
PLAIN_CALL: dict[str, Any] = {"name": "bench-plain", "instructions": "Greet the user.", "input": "Say hello."}
SCHEMA_CALL: dict[str, Any] = {
    "name": "bench-schema",
    "instructions": "Greet the user.",
    "input": {"text": "Say hello."},
    "output_schema": OUTPUT_SCHEMA,
}


def pair(session: aiohttp.ClientSession, stack: Stack, call: dict[str, Any]) -> tuple[Timed, Timed]:
    direct = poster(session, stack.upstream_chat_url, upstream_body(call), upstream_headers())
    gateway = poster(session, f"{stack.gateway.url}/v2/call", call, gateway_headers())
    return direct, gateway


async def latency(stack: Stack, sides: tuple[Timed, Timed], args: argparse.Namespace) -> dict[str, float]:
    """Added p50/p99 at concurrency 1, plus the server's CPU per call over the same calls."""
    direct, gateway, cpu_ms = await interleaved_with_cpu(stack, *sides, args.warmup, args.requests, args.block)
    figures = added(direct, gateway)
    figures["taskgate_cpu_ms_per_call"] = cpu_ms
    return figures


async def throughput(stack: Stack, sides: tuple[Timed, Timed], args: argparse.Namespace) -> dict[str, float]:
    """Best req/s of each side over `rounds` alternating runs: the least disturbed run is the capacity."""
    direct, gateway = sides
    total, concurrency = args.total, args.concurrency
    await requests_per_second(direct, concurrency * 4, concurrency)  # open the whole pool on both sides
    await requests_per_second(gateway, concurrency * 4, concurrency)
    direct_best = gateway_best = spent = 0.0
    for _ in range(args.rounds):
        direct_best = max(direct_best, await requests_per_second(direct, total, concurrency))
        before = cpu_seconds(stack.gateway.proc.pid)
        gateway_best = max(gateway_best, await requests_per_second(gateway, total, concurrency))
        spent += cpu_seconds(stack.gateway.proc.pid) - before
    return {"direct_rps": round(direct_best, 1), "taskgate_rps": round(gateway_best, 1),
            "taskgate_share_of_direct": round(gateway_best / direct_best, 3),
            "taskgate_cpu_ms_per_call": round(spent * 1000 / (total * args.rounds), 3)}


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    async with keepalive_session(max(args.concurrency, 4)) as session:
        await stack_ready(session, stack)
        plain = pair(session, stack, PLAIN_CALL)
        schema = pair(session, stack, SCHEMA_CALL)
        summary: dict[str, Any] = {"bench": "overhead", "requests": args.requests, "block": args.block}
        summary["c1_plain"] = await latency(stack, plain, args)
        summary["c1_output_schema"] = await latency(stack, schema, args)
        summary[f"c{args.concurrency}_plain"] = await throughput(stack, plain, args)
        summary["target_added_p99_ms"] = TARGET_ADDED_P99_MS
        summary["meets_target"] = all(
            summary[key]["added_p99_ms"] <= TARGET_ADDED_P99_MS for key in ("c1_plain", "c1_output_schema")
        )
        if args.profile is not None:
            summary["profile"] = await profile(stack, plain[1], schema[1], args)
        return summary


async def profile(stack: Stack, plain: Timed, schema: Timed, args: argparse.Namespace) -> str:
    """Sample the server while it serves `--requests` of each kind at concurrency 1 (timings not kept)."""
    raw = Path(args.profile)
    with hotspots.recording(stack.gateway.proc.pid, raw):
        for _ in range(args.requests):
            await plain()
            await schema()
    return str(raw)


def report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"POST /v2/call vs the fake upstream directly: concurrency 1, {args.requests} requests each "
          f"after {args.warmup} warm-up, alternating blocks of {args.block} ({placement()}); ms")
    print(f"{LATENCY_HEADER}        {'cpu ms/call':>11}")
    for name, key in (("c=1 no output_schema", "c1_plain"), ("c=1 with output_schema", "c1_output_schema")):
        figures = summary[key]
        print(f"{latency_row(name, figures, TARGET_ADDED_P99_MS)}  {figures['taskgate_cpu_ms_per_call']:11.2f}")
    rps = summary[f"c{args.concurrency}_plain"]
    print(f"c={args.concurrency} throughput ({args.total} requests, best of {args.rounds}): "
          f"direct {rps['direct_rps']:.0f} req/s, taskgate {rps['taskgate_rps']:.0f} req/s "
          f"({100 * rps['taskgate_share_of_direct']:.0f}% of direct); "
          f"taskgate cpu {rps['taskgate_cpu_ms_per_call']:.2f} ms/call")
    if args.profile is not None:
        print(f"server profile (py-spy, {args.requests} plain + {args.requests} output_schema calls), "
              f"raw stacks in {args.profile}:")
        for line in hotspots.summarise(Path(args.profile)):
            print("  " + line)
    print(orjson.dumps(summary).decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per side and mode (>= 1000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per side first")
    parser.add_argument("--block", type=int, default=50, help="requests per side before switching sides")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--total", type=int, default=3000, help="requests per throughput run")
    parser.add_argument("--rounds", type=int, default=2, help="throughput runs per side; the best counts")
    parser.add_argument("--profile", metavar="RAW_PATH", default=None,
                        help="afterwards, sample the server with py-spy and print its hot spots")
    args = parser.parse_args()
    with bench_stack() as stack:
        summary = run(measure(stack, args))
    report(summary, args)


if __name__ == "__main__":
    main()
