"""Taskgate's own CPU per call, driven in process: no sockets on the gateway side, no client process.

The other benchmarks time requests over loopback against a floor, which on a shared two-core machine
is as noisy as its neighbours. Here the app is called through ASGI directly, one request at a time,
and what is read is the process's CPU time (all its threads: the event loop, the span writer) per
call, which other processes barely move. The upstream is the fake provider in its own process, so
its work is not counted; the aiohttp client's work to reach it is, as in `taskgate serve`.

Run from a checkout: `python -m bench.inprocess` measures that checkout. `--tree DIR` measures another
checkout's `taskgate` package with this script (for a before/after in one session), and `--rounds N`
alternates the trees N times, each round in fresh processes, and prints the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = "tg_bench_inprocess"
CALLS = {
    "v2 call": ("/v2/call", {"name": "bench", "input": "hello"}),
    "v2 call, output_schema": ("/v2/call", {
        "name": "bench-schema", "input": "hello",
        "output_schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}),
    "v2 stream": ("/v2/call/stream", {"name": "bench-stream", "input": "hello"}),
    "compat": ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini",
                                               "messages": [{"role": "user", "content": "hello"}]}),
    "compat stream": ("/v3/compat/chat/completions", {"model": "openai/gpt-4o-mini", "stream": True,
                                                      "messages": [{"role": "user", "content": "hello"}]}),
}


async def _request(app: Any, path: str, body: bytes) -> int:
    """One POST through the ASGI interface; the status, after the whole response was sent."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {KEY}".encode()),
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        # As `taskgate serve`'s protocol marks every request: it reports a lost connection itself, so
        # handlers need no task of their own watching for it (`taskgate.server.disconnect`).
        "taskgate.reports_departure": True,
    }
    sent = False
    done = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    done.set()
    return status


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    return task, inbox


async def _measure(upstream: str, data_dir: str, calls: int, warmup: int, only: list[str]) -> dict[str, Any]:
    from taskgate.app import create_app
    from taskgate.config import Settings

    flush = {k: v for k, v in os.environ.items() if k == "TASKGATE_SPAN_FLUSH_SECONDS"}
    env = {**flush, "TASKGATE_API_KEYS": KEY, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"{upstream}/openai/v1",
           "TASKGATE_DEFAULT_MODEL": "openai/gpt-4o-mini", "TASKGATE_DATA_DIR": data_dir}
    app = create_app(Settings.from_env(env))
    lifespan, inbox = await _lifespan(app)
    figures: dict[str, Any] = {}
    try:
        for name, (path, payload) in CALLS.items():
            if only and name not in only:
                continue
            body = json.dumps(payload).encode()
            for _ in range(warmup):
                assert await _request(app, path, body) == 200, name
            walls = []
            cpu_start = time.process_time()
            for _ in range(calls):
                start = time.perf_counter()
                await _request(app, path, body)
                walls.append(time.perf_counter() - start)
            cpu = time.process_time() - cpu_start
            if not calls:
                continue
            figures[name] = {"cpu_us_per_call": round(cpu / calls * 1e6, 1),
                             "wall_p50_us": round(statistics.median(walls) * 1e6, 1)}
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
    return figures


def _fake_upstream() -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.provider", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return proc, url
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fake upstream did not start")


def _child(tree: Path, upstream: str, calls: int, warmup: int, only: list[str], wrapper: list[str]) -> dict[str, Any]:
    """One measurement in a fresh interpreter that imports `tree`'s taskgate. Under a `wrapper`
    (callgrind), work that depends on the clock rather than on the calls is kept out: span batches
    wait for the end (they are written off the request path, and `bench.span_writes` measures
    them), and hashing is seeded alike in both runs."""
    with tempfile.TemporaryDirectory(prefix="bench-inprocess-") as data_dir:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        if wrapper:
            env |= {"TASKGATE_SPAN_FLUSH_SECONDS": "3600", "PYTHONHASHSEED": "0"}
        command = [*wrapper, sys.executable, str(Path(__file__).resolve()), "--child", upstream, data_dir,
                   str(calls), str(warmup), *(f"--only={name}" for name in only)]
        out = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _instructions(tree: Path, upstream: str, calls: int, warmup: int, name: str) -> float:
    """Instructions per call of `name`, counted by callgrind: the same on a busy machine as on an idle one.

    Two runs under callgrind, with `calls` and with none after the same start-up and warm-up; their
    difference is the calls' own cost (start-up costs billions, and would swamp a per-call figure).
    """
    totals = []
    for count in (calls, 0):
        with tempfile.NamedTemporaryFile(prefix="callgrind-", suffix=".out") as out:
            _child(tree, upstream, count, warmup, [name],
                   ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", "--trace-children=no"])
            summary = [line for line in Path(out.name).read_text().splitlines() if line.startswith("summary:")]
            totals.append(int(summary[0].split()[1]))
    return (totals[0] - totals[1]) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="a checkout to measure (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--only", action="append", choices=list(CALLS), help="measure only this call (repeatable)")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions per call under valgrind instead of timing CPU (slow; deterministic)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        upstream, data_dir, calls, warmup = args.child
        print(json.dumps(asyncio.run(_measure(upstream, data_dir, int(calls), int(warmup), args.only or []))))
        return
    trees = [tree.resolve() for tree in args.tree or [ROOT]]
    proc, upstream = _fake_upstream()
    if args.callgrind:
        try:
            counts = {name: [_instructions(tree, upstream, args.calls, args.warmup, name) for tree in trees]
                      for name in args.only or CALLS}
        finally:
            proc.terminate()
            proc.wait()
        print(f"Instructions per call, counted by callgrind ({args.calls} calls after {args.warmup} warm-up)")
        for name, values in counts.items():
            ratio = f"   {values[1] / values[0]:5.3f}" if len(values) == 2 else ""
            print(f"{name:26s}" + "".join(f"{value / 1000:12.1f}k" for value in values) + ratio)
        print(json.dumps({"bench": "inprocess", "instructions_per_call": {
            name: dict(zip((str(tree) for tree in trees), values, strict=True)) for name, values in counts.items()}}))
        return
    results: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    try:
        for _ in range(args.rounds):
            for tree in trees:
                results[tree].append(_child(tree, upstream, args.calls, args.warmup, args.only or [], []))
    finally:
        proc.terminate()
        proc.wait()
    print(f"Taskgate CPU per call, in process (median of {args.rounds} rounds of {args.calls} calls, "
          "trees alternating)")
    header = f"{'call':26s}" + "".join(f"{tree.name[-14:]:>16s}" for tree in trees)
    print(header + ("   ratio" if len(trees) == 2 else ""))
    summary: dict[str, Any] = {}
    for name in args.only or CALLS:
        medians = [statistics.median(run[name]["cpu_us_per_call"] for run in results[tree]) for tree in trees]
        line = f"{name:26s}" + "".join(f"{value:14.1f}us" for value in medians)
        if len(trees) == 2:
            line += f"   {medians[1] / medians[0]:5.3f}"
        print(line)
        summary[name] = dict(zip((str(tree) for tree in trees), medians, strict=True))
    print(json.dumps({"bench": "inprocess", "cpu_us_per_call": summary}))


if __name__ == "__main__":
    main()
