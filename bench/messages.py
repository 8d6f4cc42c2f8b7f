"""Latency the Anthropic Messages surface adds over Chat Completions, on the same gateway and upstream.

Starts the fake upstream and `taskgate serve` (bench.common.bench_stack), then times, at concurrency 1
and in turn so drift hits both sides equally, the same one-message question asked through
`/v3/compat/chat/completions` and through `/v3/compat/v1/messages`: non-streamed, and streamed (to
the first content delta and to the end), once for each upstream wire format (an `openai/...` model
and an `anthropic/...` one). Both surfaces run the same engine call, so the difference is the cost of
parsing Anthropic's blocks and shaping Anthropic's answer and events. Target: within 0.2 ms at p50.
On a shared machine those figures move with other load, so the dialects' own work (parse the body,
shape the answer, shape a 20-delta stream) is also timed in this process, where load barely moves
it. Prints a table and, last, a one-line JSON summary.

    .venv/bin/python -m bench.messages [--requests 1000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import os
import timeit
from collections.abc import Callable
from typing import Any

import orjson

from bench.common import (
    MODEL,
    Stack,
    added_over_chat,
    bench_stack,
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
from taskgate.api.anthropic.messages_body import MessageEvents, message_body
from taskgate.api.anthropic.messages_request import parse_messages_request
from taskgate.api.openai.chat_request import parse_chat_request
from taskgate.api.openai.chat_stream import ChunkStream, completion_body
from taskgate.engine.task import Event, Finished, Result, TextDelta
from taskgate.providers.base import Usage

TARGET_ADDED_P50_MS = 0.2
QUESTION = [{"role": "user", "content": "Say hello."}]
UPSTREAMS = (f"openai/{MODEL}", "anthropic/claude-haiku-4-5")
MAX_TOKENS = 256  # sent on both sides: Messages requires it, and the upstream request should be the same


def anthropic_delta(data: bytes) -> bool:
    """A Messages stream event carrying answer text."""
    return any(event.get("type") == "content_block_delta" and event["delta"].get("text")
               for event in sse_payloads(data))


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Per upstream and mode: both surfaces' p50/p99 and what Messages adds over Chat Completions."""
    summary: dict[str, Any] = {"bench": "messages", "requests": args.requests,
                               "target_added_p50_ms": TARGET_ADDED_P50_MS}
    chat_url = f"{stack.gateway.url}/v3/compat/chat/completions"
    messages_url = f"{stack.gateway.url}/v3/compat/v1/messages"
    headers = gateway_headers()
    async with keepalive_session(2) as session:
        await stack_ready(session, stack)
        for model in UPSTREAMS:
            body = {"model": model, "messages": QUESTION, "max_tokens": MAX_TOKENS}
            streamed = {**body, "stream": True}
            chat, messages = await interleaved((poster(session, chat_url, body, headers),
                                                poster(session, messages_url, body, headers)),
                                               args.warmup, args.requests, 1)
            summary[f"{model} completion"] = added_over_chat(chat, messages, "messages")
            chat_s, messages_s = await interleaved((streamer(session, chat_url, streamed, headers, openai_delta),
                                                    streamer(session, messages_url, streamed, headers,
                                                             anthropic_delta)),
                                                   args.warmup, args.requests, 1)
            for label, at in (("first content", 1), ("whole", 2)):
                summary[f"{model} stream {label}"] = added_over_chat([t[at] for t in chat_s],
                                                                     [t[at] for t in messages_s], "messages")
    rows = [key for key in summary if isinstance(summary[key], dict)]
    summary["meets_target"] = all(summary[key]["added_p50_ms"] <= TARGET_ADDED_P50_MS for key in rows)
    return summary


def dialect_work_us() -> dict[str, float]:
    """Microseconds of each dialect's own work per request, in this process: parse, then shape a
    whole answer, or a stream of 20 text deltas and its finish."""
    body = {"model": UPSTREAMS[0], "messages": QUESTION, "max_tokens": MAX_TOKENS}
    result = Result(span_id="0e6c11aa", trace_id="t", text="Hello there, how are you?", usage=Usage(9, 7),
                    model=UPSTREAMS[0], cost=0.0001)
    deltas: list[Event] = [TextDelta(f"word{n} ") for n in range(20)]
    deltas.append(Finished(result))

    def chat() -> None:
        parse_chat_request(body, {}, "p", UPSTREAMS[0])
        completion_body([result], False)

    def messages() -> None:
        parse_messages_request(body, {}, "p")
        message_body(result)

    def chat_stream() -> None:
        chunks = ChunkStream("0e6c11aa", UPSTREAMS[0], True)
        for event in deltas:
            chunks.frames(event)

    def messages_stream() -> None:
        events = MessageEvents("0e6c11aa", UPSTREAMS[0])
        events.start()
        for event in deltas:
            events.frames(event)

    return {name: _best_us(work) for name, work in (("chat", chat), ("messages", messages),
                                                    ("chat_stream", chat_stream),
                                                    ("messages_stream", messages_stream))}


def _best_us(work: Callable[[], None], number: int = 2000) -> float:
    """The best of several runs, per call: the least disturbed by anything else on the machine."""
    return round(min(timeit.repeat(work, number=number, repeat=7)) / number * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per side")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per side first")
    args = parser.parse_args()
    with bench_stack() as stack:
        summary = run(measure(stack, args))
    summary["dialect_work_us"] = work = dialect_work_us()
    print(f"/v3/compat/v1/messages vs /v3/compat/chat/completions, same gateway and fake upstream: concurrency 1, "
          f"{args.requests} requests each after {args.warmup} warm-up, alternating ({placement()}); ms")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'':<48} {'chat p50':>9} {'msgs p50':>9} {'+p50':>7} {'chat p99':>9} {'msgs p99':>9} {'+p99':>7}")
    for key, figures in summary.items():
        if isinstance(figures, dict) and "added_p50_ms" in figures:
            verdict = "ok" if figures["added_p50_ms"] <= TARGET_ADDED_P50_MS else "OVER"
            print(f"{key:<48} {figures['chat_p50_ms']:9.3f} {figures['messages_p50_ms']:9.3f} "
                  f"{figures['added_p50_ms']:+7.3f} {figures['chat_p99_ms']:9.3f} {figures['messages_p99_ms']:9.3f} "
                  f"{figures['added_p99_ms']:+7.3f}  {verdict}")
    print(f"dialect work in process, us per request: chat {work['chat']}, messages {work['messages']}; "
          f"a 20-delta stream: chat {work['chat_stream']}, messages {work['messages_stream']}")
    print(orjson.dumps(summary).decode())


if __name__ == "__main__":
    main()
