"""Latency the compat gateway adds over calling the upstream directly (concurrency 1).

Starts the fake upstream (`python -m tests.fakes.provider`) and `taskgate serve` as subprocesses,
then times, alternately so drift hits both sides equally: a non-streamed completion straight to
the fake vs through `/v3/compat/chat/completions`, and the time to the first content chunk of a
streamed one. Added latency = gateway percentile - direct percentile. Target: <= 1.5 ms at p99.

    .venv/bin/python -m bench.compat [--requests 1000] [--warmup 200]

With two or more cores the gateway is pinned to CPU 0 and the fake plus this client to CPU 1,
as in shared/perf-notes.md, so the two servers do not steal each other's core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]
TARGET_MS = 1.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(pid: int, cpu: int) -> None:
    if (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {cpu})


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], cpu: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pin(proc.pid, cpu)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    """Poll until the server answers anything at all (a 404 or 405 is fine)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"{url} exited early:\n{err}")
        try:
            async with session.get(url) as response:
                await response.read()
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not come up in 30 s")


Timed = Callable[[], Awaitable[float]]


def completion(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> Timed:
    async def once() -> float:
        start = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            payload = await response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise SystemExit(f"{url} answered {response.status}: {payload[:300]!r}")
        return elapsed

    return once


def first_chunk(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> Timed:
    """Time to the first `data:` line carrying content; the rest is drained so the connection is reused."""

    async def once() -> float:
        start = time.perf_counter()
        elapsed = None
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                raise SystemExit(f"{url} answered {response.status}: {(await response.read())[:300]!r}")
            async for line in response.content:
                if elapsed is None and line.startswith(b"data: {") and _has_content(line[6:]):
                    elapsed = time.perf_counter() - start
        if elapsed is None:
            raise SystemExit(f"{url} streamed no content")
        return elapsed

    return once


def _has_content(data: bytes) -> bool:
    choices = orjson.loads(data).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: a per-request cost that other load on the machine cannot inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def paired(direct: Timed, gateway: Timed, warmup: int, count: int,
                 gateway_pid: int) -> tuple[list[float], list[float], float]:
    """Samples for both sides, plus the gateway's CPU milliseconds per request while they ran."""
    for _ in range(warmup):
        await direct()
        await gateway()
    a, b = [], []
    cpu_before = cpu_seconds(gateway_pid)
    for _ in range(count):
        a.append(await direct())
        b.append(await gateway())
    return a, b, (cpu_seconds(gateway_pid) - cpu_before) * 1000 / count


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def row(name: str, direct: list[float], gateway: list[float], cpu_ms: float) -> str:
    d50, d99 = percentile(direct, 0.5), percentile(direct, 0.99)
    g50, g99 = percentile(gateway, 0.5), percentile(gateway, 0.99)
    verdict = "ok" if g99 - d99 <= TARGET_MS else "OVER"
    return (f"{name:<26} {d50:8.3f} {d99:8.3f} {g50:8.3f} {g99:8.3f} {g50 - d50:+8.3f} {g99 - d99:+8.3f} "
            f"{cpu_ms:8.3f}  {verdict}")


async def measure(fake_url: str, gateway_url: str, warmup: int, count: int,
                  procs: list[subprocess.Popen[bytes]]) -> list[str]:
    gateway_pid = procs[1].pid
    connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url, proc in zip((fake_url, gateway_url), procs, strict=True):
            await wait_ready(session, url, proc)
        upstream = f"{fake_url}/openai/v1/chat/completions"
        gateway = f"{gateway_url}/v3/compat/chat/completions"
        json_headers = {"content-type": "application/json"}
        direct_headers = {**json_headers, "authorization": "Bearer upstream-key"}
        gateway_headers = {**json_headers, "authorization": f"Bearer {KEY}"}
        plain = {"model": MODEL, "messages": MESSAGES}
        routed = {"model": f"openai/{MODEL}", "messages": MESSAGES}
        lines = []
        direct, through, cpu_ms = await paired(
            completion(session, upstream, orjson.dumps(plain), direct_headers),
            completion(session, gateway, orjson.dumps(routed), gateway_headers), warmup, count, gateway_pid)
        lines.append(row("non-streamed completion", direct, through, cpu_ms))
        direct, through, cpu_ms = await paired(
            first_chunk(session, upstream, orjson.dumps({**plain, "stream": True}), direct_headers),
            first_chunk(session, gateway, orjson.dumps({**routed, "stream": True}), gateway_headers),
            warmup, count, gateway_pid)
        lines.append(row("streamed: first content", direct, through, cpu_ms))
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per side (>= 500)")
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    fake_port, gateway_port = free_port(), free_port()
    fake_url, gateway_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{gateway_port}"
    pin(os.getpid(), 1)
    with tempfile.TemporaryDirectory(prefix="taskgate-bench-") as data_dir:
        env = {**os.environ, "OPENAI_API_KEY": "upstream-key", "OPENAI_BASE_URL": f"{fake_url}/openai/v1",
               "TASKGATE_API_KEYS": KEY, "TASKGATE_DATA_DIR": data_dir}
        fake_cmd = [sys.executable, "-m", "tests.fakes.provider", "--port", str(fake_port)]
        serve_cmd = [sys.executable, "-c", "from taskgate.cli import main; main()", "serve",
                     "--port", str(gateway_port), "--log-level", "warning"]
        with process(fake_cmd, env, 1) as fake, process(serve_cmd, env, 0) as server:
            lines = asyncio.run(measure(fake_url, gateway_url, args.warmup, args.requests, [fake, server]))
    print(f"compat gateway vs fake upstream, concurrency 1, {args.requests} requests each after "
          f"{args.warmup} warm-up (ms; 'gw cpu' = gateway CPU time per request, whole stream for streams)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(above ~1.5 the latency columns measure the other load, not the gateway)")
    print(f"{'':<26} {'dir p50':>8} {'dir p99':>8} {'gw p50':>8} {'gw p99':>8} {'+p50':>8} {'+p99':>8} "
          f"{'gw cpu':>8}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
