"""Latency the compat gateway adds over calling the upstream directly (concurrency 1).

Starts the fake upstream, `taskgate serve` and the floor (bench.floor_app, a bare pass-through on the
same uvicorn stack; bench.common.bench_stack), then times, in turn so drift hits every side equally:
a non-streamed completion straight to the fake vs through the floor vs through
`/v3/compat/chat/completions`, and the time to the first content chunk of a streamed one.
Added latency = gateway percentile - direct percentile. Target: <= 1.5 ms at p99. The floor's added
figures are what any Python pass-through costs here, and Taskgate - floor is what Taskgate itself
adds. Each row also gives both servers' CPU ms per request (a whole stream for streams), which other
load on a shared machine barely moves. Prints a table and, last, a one-line JSON summary.

    .venv/bin/python -m bench.compat [--requests 1000] [--warmup 200] [--block 1] [--profile RAW_PATH]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import orjson

from bench import hotspots
from bench.common import (
    CPU_HEADER,
    LATENCY_HEADER,
    MODEL,
    Stack,
    added,
    bench_stack,
    cpu_columns,
    gateway_headers,
    interleaved_with_cpu,
    keepalive_session,
    latency_row,
    openai_delta,
    placement,
    poster,
    run,
    stack_ready,
    streamer,
    upstream_headers,
)

TARGET_ADDED_P99_MS = 1.5
MESSAGES = [{"role": "user", "content": "Say hello."}]
DIRECT_BODY: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
GATEWAY_BODY: dict[str, Any] = {"model": f"openai/{MODEL}", "messages": MESSAGES}
FIRST_DELTA = 1  # the index of "first content delta" in a streamer's Timings
ROWS = (("non-streamed completion", "c1_completion"), ("streamed: first content", "c1_stream_first_content"))


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Per mode, the latency figures and both servers' CPU ms per request."""
    async with keepalive_session(4) as session:
        await stack_ready(session, stack)
        servers = (stack.floor, stack.gateway)
        floor_url = f"{stack.floor.url}/v3/compat/chat/completions"
        gateway_url = f"{stack.gateway.url}/v3/compat/chat/completions"
        summary: dict[str, Any] = {"bench": "compat", "requests": args.requests, "block": args.block}

        complete = poster(session, gateway_url, GATEWAY_BODY, gateway_headers())
        (direct, floor, gateway), cpu_ms = await interleaved_with_cpu(servers, (
            poster(session, stack.upstream_chat_url, DIRECT_BODY, upstream_headers()),
            poster(session, floor_url, GATEWAY_BODY, gateway_headers()),
            complete,
        ), args.warmup, args.requests, args.block)
        summary["c1_completion"] = _figures(added(direct, floor, gateway), cpu_ms)

        stream = {**GATEWAY_BODY, "stream": True}
        stream_through = streamer(session, gateway_url, stream, gateway_headers(), openai_delta)
        (direct_s, floor_s, gateway_s), cpu_ms = await interleaved_with_cpu(servers, (
            streamer(session, stack.upstream_chat_url, {**DIRECT_BODY, "stream": True}, upstream_headers(),
                     openai_delta),
            streamer(session, floor_url, stream, gateway_headers(), openai_delta),
            stream_through,
        ), args.warmup, args.requests, args.block)
        first = [[t[FIRST_DELTA] for t in side] for side in (direct_s, floor_s, gateway_s)]
        summary["c1_stream_first_content"] = _figures(added(*first), cpu_ms)

        keys = [key for _, key in ROWS]
        summary["target_added_p99_ms"] = TARGET_ADDED_P99_MS
        summary["meets_target"] = all(summary[key]["added_p99_ms"] <= TARGET_ADDED_P99_MS for key in keys)
        summary["taskgate_over_floor_p99_ms"] = max(summary[key]["taskgate_over_floor_p99_ms"] for key in keys)
        if args.profile is not None:
            with hotspots.recording(stack.gateway.proc.pid, Path(args.profile)):
                for _ in range(args.requests):  # timings not kept: py-spy's sampling slows the server
                    await complete()
                    await stream_through()
            summary["profile"] = args.profile
        return summary


def _figures(figures: dict[str, float], cpu_ms: list[float]) -> dict[str, float]:
    figures["floor_cpu_ms_per_call"], figures["taskgate_cpu_ms_per_call"] = cpu_ms
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per side (>= 500)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per side first")
    parser.add_argument("--block", type=int, default=1, help="requests per side before switching sides")
    parser.add_argument("--profile", metavar="RAW_PATH", default=None,
                        help="afterwards, sample the server with py-spy and print its hot spots")
    args = parser.parse_args()
    with bench_stack() as stack:
        summary = run(measure(stack, args))
    print(f"/v3/compat/chat/completions vs the floor (bare pass-through) vs the fake upstream directly: "
          f"concurrency 1, {args.requests} requests each after {args.warmup} warm-up, alternating blocks of "
          f"{args.block} ({placement()}); ms. fl/tg + = added over direct, tg-fl = Taskgate minus floor, "
          f"cpu = ms per request")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(above ~1.5 the latency columns measure the other load, not the gateway)")
    print(f"{LATENCY_HEADER}{CPU_HEADER}")
    for name, key in ROWS:
        figures = summary[key]
        print(latency_row(name, figures, TARGET_ADDED_P99_MS)
              + cpu_columns(figures["floor_cpu_ms_per_call"], figures["taskgate_cpu_ms_per_call"]))
    if args.profile is not None:
        print(f"server profile (py-spy, {args.requests} completions + {args.requests} streams), "
              f"raw stacks in {args.profile}:")
        for line in hotspots.summarise(Path(args.profile)):
            print("  " + line)
    print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
