"""Local model through the gateway vs llama-cpp-python called directly, plus grammar compile cost.

Both sides run the bundled Gemma 3 270M on the same prompt (Taskgate's own prompt code builds it
from the v2 call), greedy, with the same max_tokens and stop: the gateway through
`POST /v2/call/stream` on a `taskgate serve` subprocess, the baseline with `Llama.create_completion`
in this process. Runs alternate between the two so a busy shared machine slows both alike.
Targets (issue 6): gateway tokens/s >= 0.95x direct, and <= 20 ms added time to first token.

    .venv/bin/python -m bench.local [--runs 5] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.common import (
    GATEWAY_KEY,
    ROOT,
    Server,
    free_port,
    gateway_headers,
    wait_ready,
)
from taskgate.api.v2.calls import parse_call
from taskgate.engine.prompt import build_messages
from taskgate.providers.local.adapter import CONTEXT_TOKENS
from taskgate.providers.local.grammar import GrammarCache, schema_to_gbnf
from taskgate.providers.local.model_files import ensure_bundled_model
from taskgate.providers.local.prompt import TURN_STOP, build_prompt
from tests.schemas import CAPITAL_SCHEMA

MODEL = "local/gemma-3-270m"
SCHEMAS: dict[str, dict[str, Any]] = {
    "seed-002 capital": CAPITAL_SCHEMA,
    "nested + enum + array": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 80},
            "sentiment": {"enum": ["positive", "neutral", "negative"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            "people": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name"],
                },
            },
        },
        "required": ["title", "sentiment", "tags"],
    },
    "$defs + refs": {
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"},
                                                                "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}},
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Address"}, "work": {"$ref": "#/$defs/Address"},
                       "born": {"type": "string", "format": "date"}},
    },
}


@dataclass(slots=True)
class Sample:
    ttft_s: float
    tokens_per_s: float


def v2_call(max_tokens: int) -> dict[str, Any]:
    return {
        "name": "bench-local",
        "instructions": "Continue the list of numbers, separated by commas.",
        "input": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
        "model": {"name": MODEL, "options": {"max_tokens": max_tokens, "temperature": 0}},
    }


def sample(started: float, first: float, last: float, tokens: int) -> Sample:
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return Sample(first - started, rate)


def direct_run(llm: Any, prompt: str, max_tokens: int) -> Sample:
    """llama-cpp-python's own streaming completion, timed like the gateway: call to first content and last piece."""
    started = time.perf_counter()
    first = last = 0.0
    text = []
    for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_p=0.95,
                                       stop=[TURN_STOP], stream=True):
        piece = chunk["choices"][0]["text"]
        if piece:
            last = time.perf_counter()
            # A bare " " token is not content (the gateway trims it), so it does not end the TTFT.
            first = first or (last if piece.strip() else 0.0)
            text.append(piece)
    return sample(started, first, last, count_tokens(llm, "".join(text)))


async def gateway_run(session: Any, url: str, body: dict[str, Any], llm: Any) -> Sample:
    started = time.perf_counter()
    first = last = 0.0
    text = []
    headers = {**gateway_headers(), "accept": "text/event-stream"}
    async with session.post(f"{url}/v2/call/stream", data=orjson.dumps(body), headers=headers) as response:
        if response.status != 200:
            raise SystemExit(f"/v2/call/stream answered {response.status}: {(await response.read())[:300]!r}")
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            event = orjson.loads(line[5:])
            if event.get("chunk_type") == "error":
                raise SystemExit(f"the stream failed: {event}")
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                last = time.perf_counter()
                first = first or last
                text.append(delta)
    return sample(started, first, last, count_tokens(llm, "".join(text)))


def count_tokens(llm: Any, text: str) -> int:
    """Both sides counted by the same tokenizer, so their rates compare."""
    return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))


@contextlib.contextmanager
def serve(cmd: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    with tempfile.TemporaryFile(prefix="bench-local-taskgate-") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield Server("taskgate", f"http://127.0.0.1:{port}", proc, log)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def time_each(fn: Callable[[], object], reps: int) -> float:
    """Median seconds of one call of `fn`."""
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def grammar_report(llm: Any) -> None:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    def parse_check(gbnf: str) -> str | None:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        if not sampler:
            return "rejected"
        llama_cpp.llama_sampler_free(sampler)
        return None

    print("\ngrammar compile per schema (median)")
    print(f"{'schema':<24}{'convert':>12}{'+ llama.cpp check':>20}{'cached':>12}")
    for name, schema in SCHEMAS.items():
        convert = time_each(lambda s=schema: schema_to_gbnf(s), 30)
        gbnf = schema_to_gbnf(schema)
        check = time_each(lambda g=gbnf: parse_check(g), 30)
        cache = GrammarCache(check=parse_check)
        cache.get(schema)
        cached = time_each(lambda s=schema, c=cache: c.get(s), 2000)
        print(f"{name:<24}{convert * 1e3:>10.2f}ms{(convert + check) * 1e3:>18.2f}ms{cached * 1e6:>10.1f}us")


async def compare(args: argparse.Namespace, data_dir: Path) -> None:
    from llama_cpp import Llama

    model_path = ensure_bundled_model(data_dir)  # verified once here, so the server's first load is a plain load
    llm = Llama(model_path=str(model_path), n_ctx=CONTEXT_TOKENS, verbose=False)
    body = v2_call(args.max_tokens)
    prompt = build_prompt(build_messages(parse_call(body, "bench"), []))
    port = free_port()
    env = {**os.environ, "TASKGATE_API_KEYS": GATEWAY_KEY, "TASKGATE_DEFAULT_MODEL": MODEL}
    cmd = [sys.executable, "-c", "from taskgate.cli import main; main()", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"]
    # Not pinned (unlike the gateway benches): on a shared 2-core machine a pinned server queues behind
    # whatever else runs on its core, while the baseline floats; only one side generates at a time.
    with serve(cmd, env, port) as server:
        # A fresh connection per call: a direct run outlasts uvicorn's 5 s keep-alive, so a pooled
        # connection would be closed under us (a loopback connect costs ~0.1 ms of the gateway's TTFT).
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            await wait_ready(session, server, "/health")
            await gateway_run(session, server.url, body, llm)  # loads the model in the server
            direct_run(llm, prompt, args.max_tokens)
            direct: list[Sample] = []
            gateway: list[Sample] = []
            for _ in range(args.runs):
                direct.append(direct_run(llm, prompt, args.max_tokens))
                gateway.append(await gateway_run(session, server.url, body, llm))
    d_rate = statistics.median(s.tokens_per_s for s in direct)
    g_rate = statistics.median(s.tokens_per_s for s in gateway)
    d_ttft = median_ms([s.ttft_s for s in direct])
    g_ttft = median_ms([s.ttft_s for s in gateway])
    print(f"local model, {args.runs} alternating runs, max_tokens={args.max_tokens}, greedy (medians)")
    print(f"{'':<10}{'tokens/s':>10}{'TTFT':>12}")
    print(f"{'direct':<10}{d_rate:>10.1f}{d_ttft:>10.1f}ms")
    print(f"{'gateway':<10}{g_rate:>10.1f}{g_ttft:>10.1f}ms")
    ratio = g_rate / d_rate if d_rate else 0.0
    print(f"gateway/direct tokens/s: {ratio:.3f} (target >= 0.95); added TTFT: {g_ttft - d_ttft:+.1f} ms "
          "(target <= 20 ms)")
    grammar_report(llm)
    llm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskgate-bench-local-") as data_dir:
        asyncio.run(compare(args, Path(data_dir)))


if __name__ == "__main__":
    main()
