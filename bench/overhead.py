"""Latency and throughput that `POST /v2/call` adds over calling the upstream directly (issue 2).

Starts the fake upstream, `taskgate serve` and the floor (bench.floor_app, a bare pass-through on
the same uvicorn stack) as subprocesses and drives them over one keep-alive aiohttp client. The
direct baseline posts to the fake the very chat body Taskgate would send it; so does the floor.

1. concurrency 1, no output_schema: p50/p99 direct, via the floor and via /v2/call, in alternating blocks;
2. the same with an output_schema (the fake answers with a valid instance);
3. requests per second at concurrency 32, direct vs floor vs /v2/call (best of --rounds, alternating).

Added = Taskgate percentile - direct percentile. Target: added p99 <= 2 ms at concurrency 1.
The floor's added figures are what any Python pass-through costs here, and Taskgate - floor is what
Taskgate itself adds. Each row also gives both servers' CPU ms per call (from /proc), which other
load on a shared machine barely moves. Prints a table and, last, a one-line JSON summary.

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
    CPU_HEADER,
    LATENCY_HEADER,
    Stack,
    Timed,
    added,
    bench_stack,
    cpu_columns,
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


Sides = tuple[Timed, Timed, Timed]  # direct, floor, taskgate


def sides_for(session: aiohttp.ClientSession, stack: Stack, call: dict[str, Any]) -> Sides:
    direct = poster(session, stack.upstream_chat_url, upstream_body(call), upstream_headers())
    floor = poster(session, f"{stack.floor.url}/v2/call", call, gateway_headers())
    gateway = poster(session, f"{stack.gateway.url}/v2/call", call, gateway_headers())
    return direct, floor, gateway


async def latency(stack: Stack, sides: Sides, args: argparse.Namespace) -> dict[str, float]:
    """Added p50/p99 at concurrency 1, plus both servers' CPU per call over the same calls."""
    (direct, floor, gateway), (floor_cpu, gateway_cpu) = await interleaved_with_cpu(
        (stack.floor, stack.gateway), sides, args.warmup, args.requests, args.block)
    figures = added(direct, floor, gateway)
    figures["floor_cpu_ms_per_call"] = floor_cpu
    figures["taskgate_cpu_ms_per_call"] = gateway_cpu
    return figures


async def throughput(stack: Stack, sides: Sides, args: argparse.Namespace) -> dict[str, float]:
    """Best req/s of each side over `rounds` alternating runs: the least disturbed run is the capacity."""
    total, concurrency = args.total, args.concurrency
    for side in sides:  # open the whole pool on every side
        await requests_per_second(side, concurrency * 4, concurrency)
    best = [0.0, 0.0, 0.0]
    spent = [0.0, 0.0, 0.0]
    pids = (None, stack.floor.proc.pid, stack.gateway.proc.pid)
    for _ in range(args.rounds):
        for i, (side, pid) in enumerate(zip(sides, pids, strict=True)):
            before = cpu_seconds(pid) if pid is not None else 0.0
            best[i] = max(best[i], await requests_per_second(side, total, concurrency))
            spent[i] += cpu_seconds(pid) - before if pid is not None else 0.0
    direct_best, floor_best, gateway_best = best
    return {"direct_rps": round(direct_best, 1), "floor_rps": round(floor_best, 1),
            "taskgate_rps": round(gateway_best, 1),
            "floor_share_of_direct": round(floor_best / direct_best, 3),
            "taskgate_share_of_direct": round(gateway_best / direct_best, 3),
            "floor_cpu_ms_per_call": round(spent[1] * 1000 / (total * args.rounds), 3),
            "taskgate_cpu_ms_per_call": round(spent[2] * 1000 / (total * args.rounds), 3)}


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    async with keepalive_session(max(args.concurrency, 4)) as session:
        await stack_ready(session, stack)
        plain = sides_for(session, stack, PLAIN_CALL)
        schema = sides_for(session, stack, SCHEMA_CALL)
        summary: dict[str, Any] = {"bench": "overhead", "requests": args.requests, "block": args.block}
        summary["c1_plain"] = await latency(stack, plain, args)
        summary["c1_output_schema"] = await latency(stack, schema, args)
        summary[f"c{args.concurrency}_plain"] = await throughput(stack, plain, args)
        summary["target_added_p99_ms"] = TARGET_ADDED_P99_MS
        summary["meets_target"] = all(
            summary[key]["added_p99_ms"] <= TARGET_ADDED_P99_MS for key in ("c1_plain", "c1_output_schema")
        )
        summary["taskgate_over_floor_p99_ms"] = max(  # the worse row: what Taskgate adds on top of the floor
            summary[key]["taskgate_over_floor_p99_ms"] for key in ("c1_plain", "c1_output_schema")
        )
        if args.profile is not None:
            summary["profile"] = await profile(stack, plain[2], schema[2], args)
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
    print(f"POST /v2/call vs the floor (bare pass-through) vs the fake upstream directly: concurrency 1, "
          f"{args.requests} requests each after {args.warmup} warm-up, alternating blocks of {args.block} "
          f"({placement()}); ms. fl/tg + = added over direct, tg-fl = Taskgate minus floor, cpu = ms per call")
    print(f"{LATENCY_HEADER}{CPU_HEADER}")
    for name, key in (("c=1 no output_schema", "c1_plain"), ("c=1 with output_schema", "c1_output_schema")):
        figures = summary[key]
        print(latency_row(name, figures, TARGET_ADDED_P99_MS)
              + cpu_columns(figures["floor_cpu_ms_per_call"], figures["taskgate_cpu_ms_per_call"]))
    rps = summary[f"c{args.concurrency}_plain"]
    print(f"c={args.concurrency} throughput ({args.total} requests, best of {args.rounds}): "
          f"direct {rps['direct_rps']:.0f} req/s, floor {rps['floor_rps']:.0f} req/s "
          f"({100 * rps['floor_share_of_direct']:.0f}% of direct), taskgate {rps['taskgate_rps']:.0f} req/s "
          f"({100 * rps['taskgate_share_of_direct']:.0f}% of direct); cpu ms/call "
          f"floor {rps['floor_cpu_ms_per_call']:.2f}, taskgate {rps['taskgate_cpu_ms_per_call']:.2f}")
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
    parser.add_argument("--block", type=int, default=10, help="requests per side before switching sides")
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
