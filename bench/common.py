"""Shared plumbing for the gateway benchmarks: the two servers, CPU pinning, timing and percentiles.

Every benchmark compares Taskgate against the same fake upstream called directly, so they all
need the same set-up: the fake, `taskgate serve` and the floor (bench.floor_app, a bare pass-through
on the same server stack) as subprocesses on free loopback ports, the gateway and the floor pinned to
CPU 0 (they are never measured at the same time) and the fake plus the load generator to CPU 1
(shared/perf-notes.md), and the sides' samples taken in alternating blocks so that noise from a
shared machine lands on all of them alike instead of biasing the differences.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
import orjson

from taskgate.api.v2.calls import parse_call
from taskgate.engine.prompt import build_messages
from taskgate.providers.base import ChatRequest, StructuredOutput
from taskgate.providers.openai_compat import build_body

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_KEY = "bench-key"
UPSTREAM_KEY = "sk-fake"
MODEL = "gpt-4o-mini"
GATEWAY_CPU = 0  # the floor too
CLIENT_CPU = 1  # the fake upstream and the load generator share it
READY_TIMEOUT_S = 60.0

T = TypeVar("T")
Timed = Callable[[], Awaitable[float]]
Sampler = Callable[[], Awaitable[T]]
Timings = tuple[float, float, float]  # a stream's seconds to its first byte, first delta, and end


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def can_pin() -> bool:
    return (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")


def pin(pid: int, cpu: int) -> None:
    """Keep `pid` on one core; on a one-core machine there is nothing to separate."""
    if can_pin():
        os.sched_setaffinity(pid, {cpu})


@dataclass(slots=True)
class Server:
    """A benchmark subprocess whose stderr goes to a file: a pipe nobody reads would block it."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def failure(self) -> str:
        self.log.seek(0)
        return f"{self.name} ({self.url}) exited with {self.proc.returncode}:\n{self.log.read().decode()[-4000:]}"


@contextlib.contextmanager
def subprocess_server(name: str, args: list[str], env: dict[str, str], url: str, cpu: int) -> Iterator[Server]:
    with tempfile.TemporaryFile(prefix=f"bench-{name}-") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        pin(proc.pid, cpu)
        try:
            yield Server(name, url, proc, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(slots=True)
class Stack:
    fake: Server
    gateway: Server
    floor: Server

    @property
    def upstream_chat_url(self) -> str:
        return f"{self.fake.url}/openai/v1/chat/completions"


@contextlib.contextmanager
def bench_stack(stream_events: int | None = None) -> Iterator[Stack]:
    """The fake upstream, `taskgate serve` (fresh data dir) and the floor; this process joins the fake's CPU."""
    fake_port, gateway_port, floor_port = free_port(), free_port(), free_port()
    fake_url, gateway_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{gateway_port}"
    floor_url = f"http://127.0.0.1:{floor_port}"
    pin(os.getpid(), CLIENT_CPU)
    fake_cmd = [sys.executable, "-m", "tests.fakes.provider", "--port", str(fake_port)]
    if stream_events is not None:
        fake_cmd += ["--stream-events", str(stream_events)]
    with tempfile.TemporaryDirectory(prefix="taskgate-bench-") as data_dir:
        env = {
            **os.environ,
            "TASKGATE_API_KEYS": GATEWAY_KEY,
            "TASKGATE_DEFAULT_MODEL": f"openai/{MODEL}",
            "OPENAI_API_KEY": UPSTREAM_KEY,
            "OPENAI_BASE_URL": f"{fake_url}/openai/v1",
            "ANTHROPIC_API_KEY": "x",
            "ANTHROPIC_BASE_URL": f"{fake_url}/anthropic",
            "BENCH_FLOOR_UPSTREAM": f"{fake_url}/openai/v1/chat/completions",
        }
        serve_cmd = [sys.executable, "-c", "from taskgate.cli import main; main()", "serve", "--host", "127.0.0.1",
                     "--port", str(gateway_port), "--data-dir", data_dir, "--log-level", "warning"]
        floor_cmd = [sys.executable, "-m", "bench.floor_app", "--port", str(floor_port)]
        with subprocess_server("fake upstream", fake_cmd, env, fake_url, CLIENT_CPU) as fake, \
                subprocess_server("taskgate", serve_cmd, env, gateway_url, GATEWAY_CPU) as gateway, \
                subprocess_server("floor", floor_cmd, env, floor_url, GATEWAY_CPU) as floor:
            yield Stack(fake, gateway, floor)


async def wait_ready(session: aiohttp.ClientSession, server: Server, path: str = "/") -> None:
    """Poll until the server answers at all (the fake has no GET routes, so a 404/405 counts)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(server.failure())
        try:
            async with session.get(server.url + path) as response:
                await response.read()
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)
    raise SystemExit(f"{server.name} at {server.url} did not come up in {READY_TIMEOUT_S:.0f} s")


async def stack_ready(session: aiohttp.ClientSession, stack: Stack) -> None:
    await wait_ready(session, stack.fake)
    await wait_ready(session, stack.gateway, "/health")
    await wait_ready(session, stack.floor)


def keepalive_session(connections: int) -> aiohttp.ClientSession:
    """One pooled keep-alive client for both targets; no total timeout so a slow outlier is measured, not cut."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, keepalive_timeout=120)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))


def gateway_headers() -> dict[str, str]:
    return {"content-type": "application/json", "authorization": f"Bearer {GATEWAY_KEY}"}


def upstream_headers() -> dict[str, str]:
    return {"content-type": "application/json", "authorization": f"Bearer {UPSTREAM_KEY}"}


def upstream_body(v2_call: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    """The chat body Taskgate sends the upstream for `v2_call`, built with its own prompt and adapter code.

    The direct baseline must ask the fake for exactly what the gateway asks it for (same messages,
    same response_format, so the same answer), or the difference would include the fake's work.
    """
    task = parse_call(v2_call, "bench")
    structured = StructuredOutput(task.output_schema) if task.output_schema is not None else None
    body = build_body(ChatRequest(model=MODEL, messages=build_messages(task, []), structured=structured), "openai")
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def fail_status(url: str, status: int, payload: bytes) -> None:
    """A benchmark of error answers would measure the wrong thing: stop at the first one."""
    if status != 200:
        raise SystemExit(f"{url} answered {status}: {payload[:300]!r}")


def poster(session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]) -> Timed:
    """One timed POST whose whole answer is read; an error answer stops the run."""
    data = orjson.dumps(body)

    async def once() -> float:
        start = time.perf_counter()
        async with session.post(url, data=data, headers=headers) as response:
            payload = await response.read()
        elapsed = time.perf_counter() - start
        fail_status(url, response.status, payload)
        return elapsed

    return once


def sse_payloads(data: bytes) -> list[Any]:
    """The JSON payloads of the `data:` lines in a run of whole SSE events."""
    return [orjson.loads(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: {")]


def openai_delta(data: bytes) -> bool:
    """An OpenAI chunk with non-empty content (the role chunk and usage chunk do not count)."""
    for event in sse_payloads(data):
        choices = event.get("choices") or [{}]
        if choices[0].get("delta", {}).get("content"):
            return True
    return False


def streamer(session: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str],
             is_delta: Callable[[bytes], bool]) -> Sampler[Timings]:
    """One streamed POST, read as raw chunks to the end; events are parsed only until the first delta."""
    data = orjson.dumps(body)

    async def once() -> Timings:
        first_byte = first_delta = None
        pending = b""
        start = time.perf_counter()
        async with session.post(url, data=data, headers=headers) as response:
            if response.status != 200:
                fail_status(url, response.status, await response.read())
            async for chunk in response.content.iter_any():
                now = time.perf_counter()
                if first_byte is None:
                    first_byte = now - start
                if first_delta is None:
                    whole, _, pending = (pending + chunk).rpartition(b"\n\n")
                    if whole and is_delta(whole):
                        first_delta = now - start
        end = time.perf_counter() - start
        if first_byte is None or first_delta is None:
            raise SystemExit(f"{url} streamed no content delta")
        return first_byte, first_delta, end

    return once


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in the load generator while it times requests.

    A collection of its young objects takes 1-2 ms here; whichever request it lands in would be
    charged for it, on whichever side happened to be running. The few cycles a run leaves behind
    are collected once it ends. (It unfreezes all on leaving: nothing else in a benchmark freezes.)
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


async def interleaved(sides: Sequence[Sampler[T]], warmup: int, count: int, block: int) -> list[list[T]]:
    """`count` samples of each side, taken in turn in blocks of `block` requests after `warmup` of each."""
    for _ in range(warmup):
        for side in sides:
            await side()
    samples: list[list[T]] = [[] for _ in sides]
    with collector_paused():
        while len(samples[0]) < count:
            size = min(block, count - len(samples[0]))
            for side, taken in zip(sides, samples, strict=True):
                taken += [await side() for _ in range(size)]
    return samples


async def interleaved_with_cpu(servers: Sequence[Server], sides: Sequence[Sampler[T]], warmup: int, count: int,
                               block: int) -> tuple[list[list[T]], list[float]]:
    """`interleaved`, plus each of `servers`' CPU milliseconds per request over the same run (warm-up included).

    Each server only serves its own side's requests, so its CPU over the whole run is that side's.
    """
    before = [cpu_seconds(server.proc.pid) for server in servers]
    samples = await interleaved(sides, warmup, count, block)
    spent = [cpu_seconds(server.proc.pid) - start for server, start in zip(servers, before, strict=True)]
    return samples, [round(seconds * 1000 / (warmup + count), 3) for seconds in spent]


async def requests_per_second(call: Timed, total: int, concurrency: int) -> float:
    """Throughput of `total` calls made by `concurrency` workers sharing one counter."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far, all threads (Linux /proc).

    Per request, this is the figure to compare between runs on a shared machine: other load
    stretches latency but barely moves how much CPU the gateway itself burns.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile_ms(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of samples in seconds, in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def added_over_chat(chat: list[float], surface: list[float], name: str = "surface") -> dict[str, float]:
    """p50/p99 of Chat Completions and of another compat surface (`name`) on the same gateway and
    upstream, in ms, what the surface adds, and its p50 ratio."""
    c50, s50 = percentile_ms(chat, 0.5), percentile_ms(surface, 0.5)
    c99, s99 = percentile_ms(chat, 0.99), percentile_ms(surface, 0.99)
    return {"chat_p50_ms": round(c50, 3), f"{name}_p50_ms": round(s50, 3), "added_p50_ms": round(s50 - c50, 3),
            "chat_p99_ms": round(c99, 3), f"{name}_p99_ms": round(s99, 3), "added_p99_ms": round(s99 - c99, 3),
            "p50_ratio": round(s50 / c50, 3)}


def added(direct: list[float], floor: list[float], gateway: list[float]) -> dict[str, float]:
    """p50/p99 of the three sides, in ms, and what the floor and the gateway add over direct.

    `added_*` is Taskgate minus direct (what the targets are about); `floor_added_*` is the floor
    minus direct, the cost of any Python pass-through here; `taskgate_over_floor_*` is Taskgate
    minus the floor, what Taskgate itself adds on top of that.
    """
    d50, d99 = percentile_ms(direct, 0.5), percentile_ms(direct, 0.99)
    f50, f99 = percentile_ms(floor, 0.5), percentile_ms(floor, 0.99)
    g50, g99 = percentile_ms(gateway, 0.5), percentile_ms(gateway, 0.99)
    return {
        "direct_p50_ms": round(d50, 3),
        "direct_p99_ms": round(d99, 3),
        "floor_p50_ms": round(f50, 3),
        "floor_p99_ms": round(f99, 3),
        "taskgate_p50_ms": round(g50, 3),
        "taskgate_p99_ms": round(g99, 3),
        "floor_added_p50_ms": round(f50 - d50, 3),
        "floor_added_p99_ms": round(f99 - d99, 3),
        "added_p50_ms": round(g50 - d50, 3),
        "added_p99_ms": round(g99 - d99, 3),
        "taskgate_over_floor_p50_ms": round(g50 - f50, 3),
        "taskgate_over_floor_p99_ms": round(g99 - f99, 3),
    }


LATENCY_HEADER = (f"{'':<30} {'dir p50':>8} {'dir p99':>8} {'fl +p50':>8} {'fl +p99':>8} {'tg +p50':>8} "
                  f"{'tg +p99':>8} {'tg-fl 50':>8} {'tg-fl 99':>8}      ")
CPU_HEADER = f"{'fl cpu':>7} {'tg cpu':>7}"


def latency_row(name: str, figures: dict[str, float], target_ms: float) -> str:
    """Direct p50/p99, then added by the floor, by Taskgate, and by Taskgate over the floor; `ok` or `OVER`."""
    verdict = "ok" if figures["added_p99_ms"] <= target_ms else "OVER"
    return (f"{name:<30} {figures['direct_p50_ms']:8.3f} {figures['direct_p99_ms']:8.3f} "
            f"{figures['floor_added_p50_ms']:+8.3f} {figures['floor_added_p99_ms']:+8.3f} "
            f"{figures['added_p50_ms']:+8.3f} {figures['added_p99_ms']:+8.3f} "
            f"{figures['taskgate_over_floor_p50_ms']:+8.3f} {figures['taskgate_over_floor_p99_ms']:+8.3f}  "
            f"{verdict:<4}")


def cpu_columns(floor_ms: float, taskgate_ms: float) -> str:
    return f"{floor_ms:7.2f} {taskgate_ms:7.2f}"


def placement() -> str:
    if can_pin():
        return f"taskgate and floor on CPU {GATEWAY_CPU}, fake upstream + client on CPU {CLIENT_CPU}"
    return "not pinned (fewer than 2 CPUs)"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the load generator on uvloop when it is installed: a cheaper client leaves less noise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
