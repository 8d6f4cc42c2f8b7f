"""Latency each newer compat surface adds over Chat Completions, on the same gateway and fake upstream (c=1).

The surfaces differ only in parsing and shaping (one engine serves them all), so the figure is the
surface's percentile minus chat completions' over the same run: `/v3/compat/responses` and
`/v3/compat/openresponses` against `/v3/compat/chat/completions`, for a non-streamed answer and for
the first content delta of a streamed one. The sides alternate request by request so that other load
lands on all of them alike. Target: within 0.2 ms at p50. Gateway CPU per request is measured per
surface in runs of its own afterwards (one server serves every side, so an interleaved run cannot
split it), and moves far less than latency on a busy machine; so does the last figure, the dialect's
own work per call (parse, shape, encode) timed in this process. Prints a table, then one JSON line.

    .venv/bin/python -m bench.surfaces [--requests 1000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import os
import timeit
from typing import Any

import orjson

from bench.common import (
    MODEL,
    Stack,
    Timed,
    added_over_chat,
    bench_stack,
    cpu_seconds,
    gateway_headers,
    interleaved,
    keepalive_session,
    openai_delta,
    placement,
    poster,
    run,
    sse_payloads,
    stack_ready,
    streamer,
)
from taskgate.api.openai.chat_request import parse_chat_request
from taskgate.api.openai.chat_stream import completion_body
from taskgate.api.openai.responses_body import ResponseShape
from taskgate.api.openai.responses_request import parse_responses_request
from taskgate.engine.task import Result
from taskgate.providers.base import Usage
from taskgate.server.request_io import dumps

TARGET_ADDED_P50_MS = 0.2
GATEWAY_MODEL = f"openai/{MODEL}"
USER = [{"role": "user", "content": "Say hello."}]
CHAT = ("/v3/compat/chat/completions", {"model": GATEWAY_MODEL, "messages": USER})
SURFACES = {
    "responses": ("/v3/compat/responses", {"model": GATEWAY_MODEL, "input": "Say hello."}),
    "openresponses": ("/v3/compat/openresponses", {"model": GATEWAY_MODEL, "input": "Say hello."}),
}
FIRST_DELTA = 1  # the index of "first content delta" in a streamer's Timings


def responses_delta(data: bytes) -> bool:
    """A Responses stream event carrying answer text."""
    return any(event.get("type") == "response.output_text.delta" and event.get("delta")
               for event in sse_payloads(data))


def dialect_us(rounds: int = 20000) -> dict[str, float]:
    """Median µs of the dialect's own work per non-streamed call, in this process (no server, no
    network: what the surfaces can differ by, and a figure other load barely moves): parse the body
    into a Task, then shape a result into the answer body and encode it."""
    result = Result(span_id="0b0e6c1e-1111-2222-3333-444455556666", trace_id="t", text="Hello there!",
                    usage=Usage(10, 5), cost=0.00001, model=GATEWAY_MODEL)

    def chat() -> None:
        parse_chat_request(CHAT[1], {}, "p", GATEWAY_MODEL)
        dumps(completion_body([result], False))

    def responses() -> None:
        call = parse_responses_request(SURFACES["responses"][1], {}, "p", GATEWAY_MODEL)
        dumps(ResponseShape(result.span_id, call.echo, call.model_label).answer(result, False))

    figures = {}
    for name, work in (("chat", chat), ("responses", responses)):
        samples = sorted(min(timeit.repeat(work, number=10, repeat=1)) / 10 for _ in range(rounds // 10))
        figures[name] = round(samples[len(samples) // 2] * 1e6, 2)
    return figures


async def _cpu_ms(stack: Stack, call: Timed, count: int) -> float:
    """The gateway's CPU ms per request over `count` requests of one side alone."""
    before = cpu_seconds(stack.gateway.proc.pid)
    for _ in range(count):
        await call()
    return round((cpu_seconds(stack.gateway.proc.pid) - before) * 1000 / count, 3)


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    async with keepalive_session(4) as session:
        await stack_ready(session, stack)
        url = stack.gateway.url
        headers = gateway_headers()
        plain = {name: poster(session, url + path, body, headers) for name, (path, body) in
                 {"chat": CHAT, **SURFACES}.items()}
        streamed = {
            "chat": streamer(session, url + CHAT[0], {**CHAT[1], "stream": True}, headers, openai_delta),
            **{name: streamer(session, url + path, {**body, "stream": True}, headers, responses_delta)
               for name, (path, body) in SURFACES.items()},
        }
        summary: dict[str, Any] = {"bench": "surfaces", "requests": args.requests,
                                   "target_added_p50_ms": TARGET_ADDED_P50_MS}
        samples = await interleaved(list(plain.values()), args.warmup, args.requests, 1)
        timed = dict(zip(plain, samples, strict=True))
        for name in SURFACES:
            summary[f"{name}_completion"] = added_over_chat(timed["chat"], timed[name])
        stream_samples = await interleaved(list(streamed.values()), args.warmup, args.requests, 1)
        firsts = {name: [t[FIRST_DELTA] for t in side] for name, side in zip(streamed, stream_samples, strict=True)}
        for name in SURFACES:
            summary[f"{name}_stream_first_content"] = added_over_chat(firsts["chat"], firsts[name])
        summary["gateway_cpu_ms_per_call"] = {name: await _cpu_ms(stack, call, args.requests)
                                              for name, call in plain.items()}
        rows = [key for key in summary if key.endswith(("_completion", "_first_content"))]
        summary["dialect_us_per_call"] = dialect_us()
        summary["meets_target"] = all(summary[key]["added_p50_ms"] <= TARGET_ADDED_P50_MS for key in rows)
        return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per side")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per side first")
    args = parser.parse_args()
    with bench_stack() as stack:
        summary = run(measure(stack, args))
    print(f"each surface vs /v3/compat/chat/completions on one gateway: concurrency 1, {args.requests} requests "
          f"per side after {args.warmup} warm-up, alternating request by request ({placement()}); ms")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'':<40} {'chat p50':>9} {'surf p50':>9} {'+p50':>8} {'ratio':>6} {'chat p99':>9} {'surf p99':>9} "
          f"{'+p99':>8}")
    for key, figures in summary.items():
        if isinstance(figures, dict) and "added_p50_ms" in figures:
            verdict = "ok" if figures["added_p50_ms"] <= TARGET_ADDED_P50_MS else "OVER"
            print(f"{key:<40} {figures['chat_p50_ms']:9.3f} {figures['surface_p50_ms']:9.3f} "
                  f"{figures['added_p50_ms']:+8.3f} {figures['p50_ratio']:6.3f} {figures['chat_p99_ms']:9.3f} "
                  f"{figures['surface_p99_ms']:9.3f} {figures['added_p99_ms']:+8.3f}  {verdict}")
    cpu = summary["gateway_cpu_ms_per_call"]
    print("gateway CPU ms per non-streamed call: " + ", ".join(f"{name} {ms:.3f}" for name, ms in cpu.items()))
    work = summary["dialect_us_per_call"]
    print("dialect work per call in-process (parse + shape + encode), median µs: "
          + ", ".join(f"{name} {us:.1f}" for name, us in work.items()))
    print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
