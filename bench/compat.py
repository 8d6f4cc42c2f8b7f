"""Latency the compat gateway adds over calling the upstream directly (concurrency 1).

Starts the fake upstream and `taskgate serve` (bench.common.bench_stack), then times, alternately
so drift hits both sides equally: a non-streamed completion straight to the fake vs through
`/v3/compat/chat/completions`, and the time to the first content chunk of a streamed one.
Added latency = gateway percentile - direct percentile. Target: <= 1.5 ms at p99. Each row also
gives the gateway's CPU ms per request (a whole stream for streams), which other load on a
shared machine barely moves.

    .venv/bin/python -m bench.compat [--requests 1000] [--warmup 200] [--block 1]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bench.common import (
    LATENCY_HEADER,
    MODEL,
    Stack,
    added,
    bench_stack,
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


async def measure(stack: Stack, args: argparse.Namespace) -> list[str]:
    """One table row per mode: the latency figures and the gateway's CPU ms per request."""
    async with keepalive_session(4) as session:
        await stack_ready(session, stack)
        gateway_url = f"{stack.gateway.url}/v3/compat/chat/completions"
        rows = []

        direct, gateway, cpu_ms = await interleaved_with_cpu(
            stack,
            poster(session, stack.upstream_chat_url, DIRECT_BODY, upstream_headers()),
            poster(session, gateway_url, GATEWAY_BODY, gateway_headers()),
            args.warmup, args.requests, args.block,
        )
        rows.append(_row("non-streamed completion", added(direct, gateway), cpu_ms))

        streams, gateway_streams, cpu_ms = await interleaved_with_cpu(
            stack,
            streamer(session, stack.upstream_chat_url, {**DIRECT_BODY, "stream": True}, upstream_headers(),
                     openai_delta),
            streamer(session, gateway_url, {**GATEWAY_BODY, "stream": True}, gateway_headers(), openai_delta),
            args.warmup, args.requests, args.block,
        )
        first_content = added([t[FIRST_DELTA] for t in streams], [t[FIRST_DELTA] for t in gateway_streams])
        rows.append(_row("streamed: first content", first_content, cpu_ms))
        return rows


def _row(name: str, figures: dict[str, float], cpu_ms: float) -> str:
    return f"{latency_row(name, figures, TARGET_ADDED_P99_MS)}  {cpu_ms:11.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per side (>= 500)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per side first")
    parser.add_argument("--block", type=int, default=1, help="requests per side before switching sides")
    args = parser.parse_args()
    with bench_stack() as stack:
        rows = run(measure(stack, args))
    print(f"/v3/compat/chat/completions vs the fake upstream directly: concurrency 1, {args.requests} requests "
          f"each after {args.warmup} warm-up, alternating blocks of {args.block} ({placement()}); ms")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(above ~1.5 the latency columns measure the other load, not the gateway)")
    print(f"{LATENCY_HEADER}        {'cpu ms/req':>11}")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
