"""What Prometheus metrics and OTLP export cost per `/v2/call`: Taskgate's CPU per call, in process.

Four configurations of the same app, measured in one process, blocks alternating round by round:
both off (TASKGATE_METRICS=0, no OTLP endpoint), metrics on, OTLP export on (to a receiver in its
own process, which answers every export with 200 and is not counted), and both on. As in
`bench.inprocess`, the app is driven through ASGI, one call at a time, against the fake upstream in
its own process, and the figure is the process's CPU time (every thread: the event loop, the span
writer, the metrics' drain, the OTLP export thread) over the calls. Each block ends with a pause of
SETTLE_S, inside the measurement, so the batches that its calls left (spans to write, metrics to
drain, spans to export) are paid for by that block and not the next one.

    python -m bench.observability [--rounds 5] [--calls 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.inprocess import CALLS, KEY, ROOT, _fake_upstream, _lifespan, _request

SETTLE_S = 1.5  # longer than the drain interval (1 s), the span flush (1 s) and the export delay below
EXPORT_DELAY_MS = "500"
CONFIGS = ("both off", "metrics", "otlp export", "metrics + otlp")


def _receiver_main(port: int) -> None:
    """An OTLP/HTTP endpoint that takes every batch and answers 200 (the collector's side, not measured)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bench.observability", "--receiver", str(port)], cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the OTLP receiver did not start")


def _env(config: str, upstream: str, receiver: str, data_dir: str) -> dict[str, str]:
    env = {"TASKGATE_API_KEYS": KEY, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"{upstream}/openai/v1",
           "TASKGATE_DEFAULT_MODEL": "openai/gpt-4o-mini", "TASKGATE_DATA_DIR": data_dir}
    if "metrics" not in config:
        env["TASKGATE_METRICS"] = "0"
    if "otlp" in config:
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver, "OTEL_BSP_SCHEDULE_DELAY": EXPORT_DELAY_MS}
    return env


async def _block(config: str, upstream: str, receiver: str, calls: int, warmup: int) -> float:
    """CPU µs per call of `calls` v2 calls on a fresh app in `config`."""
    from taskgate.app import create_app
    from taskgate.config import Settings

    path, payload = CALLS["v2 call"]
    body = json.dumps(payload).encode()
    with tempfile.TemporaryDirectory(prefix="bench-observability-") as data_dir:
        app = create_app(Settings.from_env(_env(config, upstream, receiver, data_dir)))
        lifespan, inbox = await _lifespan(app)
        try:
            for _ in range(warmup):
                assert await _request(app, path, body) == 200, config
            await asyncio.sleep(SETTLE_S)  # the warm-up's batches are not this block's
            start = time.process_time()
            for _ in range(calls):
                await _request(app, path, body)
            await asyncio.sleep(SETTLE_S)
            cpu = time.process_time() - start
        finally:
            await inbox.put({"type": "lifespan.shutdown"})
            await lifespan
    return cpu / calls * 1e6


async def _measure(upstream: str, receiver: str, rounds: int, calls: int, warmup: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {config: [] for config in CONFIGS}
    for config in CONFIGS:  # a first block of each, not counted: first-use costs (imports, caches) land here
        await _block(config, upstream, receiver, warmup, warmup)
    for round_index in range(rounds):
        order = CONFIGS if round_index % 2 == 0 else tuple(reversed(CONFIGS))
        for config in order:
            figures[config].append(await _block(config, upstream, receiver, calls, warmup))
    return figures


def _hook_costs(calls: int) -> dict[str, float]:
    """The work each call adds, timed alone (steady even on a busy machine): the metrics' appends on
    the request path, and their drain; the OTLP queue's append, and the export thread's conversion
    and protobuf encoding of each span (its HTTP request is per batch, not per span)."""
    from datetime import UTC, datetime

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from starlette.routing import Route

    from taskgate.ids import new_id
    from taskgate.store.base import SpanRecord
    from taskgate.telemetry.metrics import Metrics
    from taskgate.telemetry.otlp_export import OtlpExport
    from taskgate.telemetry.otlp_spans import readable_span, service_resource

    now = datetime.now(UTC)
    spans = [SpanRecord(id=new_id(), trace_id=new_id(), project_id="p", name="bench", parent_id=new_id(),
                        start_time=now, end_time=now, model_chain=["openai/gpt-4o-mini"],
                        model_used="openai/gpt-4o-mini", attempts=1, usage={"input_tokens": 9, "output_tokens": 5},
                        cost=0.00001, function_name="bench", meta={"cached": False}) for _ in range(calls)]
    scope = {"path": "/v2/call", "method": "POST", "route": Route("/v2/call", lambda request: None)}
    metrics = Metrics()

    def timed(work: Any) -> float:
        start = time.process_time()
        work()
        return (time.process_time() - start) / calls * 1e6

    def appends() -> None:
        for span in spans:
            metrics.request(scope, 200, 0.0123, None)
            metrics.upstream("openai", "gpt-4o-mini", 0.01, True)
            metrics.span(span)

    figures = {"metrics: appends on the request path": timed(appends),
               "metrics: drain, per call": timed(metrics.drain)}
    resource = service_resource()
    queue = OtlpExport(_null_exporter(), max_queue_size=calls + 1, max_batch_size=calls + 1)
    figures["otlp: queue append on the request path"] = timed(lambda: [queue.offer(span) for span in spans])
    figures["otlp: conversion + protobuf, export thread"] = timed(
        lambda: encode_spans([readable_span(span, resource) for span in spans]).SerializePartialToString())
    return figures


def _null_exporter() -> Any:
    """The exporter of a queue that is only timed: never started, so nothing is ever sent."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    return InMemorySpanExporter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        _receiver_main(args.receiver)
        return
    hooks = {name: statistics.median(figures) for name, figures in _transpose(
        [_hook_costs(args.calls * 10) for _ in range(args.rounds)]).items()}
    upstream_proc, upstream = _fake_upstream()
    receiver_proc, receiver = _start_receiver()
    try:
        figures = asyncio.run(_measure(upstream, receiver, args.rounds, args.calls, args.warmup))
    finally:
        for proc in (upstream_proc, receiver_proc):
            proc.terminate()
            proc.wait()
    baseline = statistics.median(figures["both off"])
    print(f"Taskgate CPU per /v2/call, in process (median of {args.rounds} blocks of {args.calls} calls, "
          "configurations alternating)")
    summary: dict[str, Any] = {}
    for config in CONFIGS:
        median = statistics.median(figures[config])
        summary[config] = {"cpu_us_per_call": round(median, 1), "vs_both_off": round(median / baseline, 3),
                           "extra_us": round(median - baseline, 1), "blocks": [round(v, 1) for v in figures[config]]}
        spread = f"(blocks {min(figures[config]):.0f} to {max(figures[config]):.0f})"
        print(f"{config:16s}{median:10.1f} us   x{median / baseline:5.3f}   {median - baseline:+6.1f} us   {spread}")
    print(f"The work each call adds, timed alone (median of {args.rounds} runs of {args.calls * 10})")
    for name, cost in hooks.items():
        print(f"{name:44s}{cost:8.2f} us")
    print(json.dumps({"bench": "observability", "cpu_us_per_call": summary,
                      "hook_us_per_call": {name: round(cost, 2) for name, cost in hooks.items()}}))


def _transpose(runs: list[dict[str, float]]) -> dict[str, list[float]]:
    return {name: [run[name] for run in runs] for name in runs[0]}


if __name__ == "__main__":
    main()
