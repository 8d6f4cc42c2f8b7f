"""`taskgate serve --workers 2` against `--workers 1`: requests per second and CPU per call.

    python -m bench.workers [--seconds 4] [--rounds 5] [--concurrency 32]

Both servers run side by side in this one run, on fresh SQLite stores, against the same fake
upstream (a subprocess), and are measured in interleaved blocks (the idle one costs nothing
meanwhile), so both see the same neighbours; medians are reported. The load is closed-loop
`POST /v2/call` at a fixed concurrency from this process, over keep-alive connections. CPU per
call is the user + system time of the server's processes (supervisor, workers and local model
process) over the measured calls. Nothing is pinned: the workers need both cores, so the fake
and the load generator share them too, and the req/s figure says how much a second worker gains
on a 2-core machine that also runs its client. Per-call CPU must not grow with workers.
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
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bench.common import (
    GATEWAY_KEY,
    MODEL,
    ROOT,
    UPSTREAM_KEY,
    cpu_seconds,
    free_port,
    gateway_headers,
    keepalive_session,
    poster,
)

CALL = {"name": "bench-workers", "input": "What is the capital of France?"}
WARMUP_S = 2.0


def process_tree(root: int) -> list[int]:
    """`root` and its children (the supervisor's workers and model process)."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == root:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def tree_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def closed_loop(session: aiohttp.ClientSession, url: str, seconds: float, concurrency: int) -> int:
    call = poster(session, url, CALL, gateway_headers())
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


@contextlib.asynccontextmanager
async def serving(workers: int, fake_url: str, session: aiohttp.ClientSession) -> AsyncIterator[tuple[str, list[int]]]:
    """`taskgate serve --workers N` on a fresh SQLite store: its URL and its processes, once ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TASKGATE_API_KEYS": GATEWAY_KEY, "TASKGATE_DEFAULT_MODEL": f"openai/{MODEL}",
           "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": f"{fake_url}/openai/v1"}
    with tempfile.TemporaryDirectory(prefix="taskgate-bench-workers-") as data_dir:
        server = subprocess.Popen([sys.executable, "-c", "from taskgate.cli import main; main()", "serve",
                                   "--port", str(port), "--data-dir", data_dir, "--log-level", "warning",
                                   "--workers", str(workers)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    async with session.get(f"{url}/health") as reply:
                        if reply.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # every worker up
            yield url, process_tree(server.pid)
        finally:
            server.terminate()
            server.wait(30)


async def block(session: aiohttp.ClientSession, url: str, pids: list[int], args: argparse.Namespace
                ) -> tuple[float, float]:
    """One measured block: (req/s, µs of CPU per call)."""
    cpu_before, started = tree_cpu(pids), time.perf_counter()
    calls = await closed_loop(session, f"{url}/v2/call", args.seconds, args.concurrency)
    elapsed, cpu = time.perf_counter() - started, tree_cpu(pids) - cpu_before
    return calls / elapsed, cpu / calls * 1e6


async def main_async(args: argparse.Namespace) -> None:
    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.provider", "--port", str(fake_port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    try:
        time.sleep(1.5)
        async with keepalive_session(args.concurrency) as session, serving(1, fake_url, session) as one, \
                serving(2, fake_url, session) as two:
            servers = {1: one, 2: two}
            for url, _ in servers.values():
                await closed_loop(session, f"{url}/v2/call", WARMUP_S, args.concurrency)
            for _ in range(args.rounds):  # interleaved, so both sides see the same neighbours
                for workers, (url, pids) in servers.items():
                    results[workers].append(await block(session, url, pids, args))
    finally:
        fake.terminate()
        fake.wait(10)
    medians = {workers: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
               for workers, runs in results.items()}
    for workers, (rps, cpu_us) in medians.items():
        print(f"--workers {workers}: median {rps:7.0f} req/s, {cpu_us:6.0f} µs CPU per call "
              f"({args.rounds} blocks of {args.seconds:g} s, c={args.concurrency})")
    print(f"ratio 2/1: req/s x{medians[2][0] / medians[1][0]:.2f}, CPU per call x{medians[2][1] / medians[1][1]:.2f}")
    print(f"machine: {os.cpu_count()} cores shared with other helpers' work: timings are not precise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one measured block")
    parser.add_argument("--rounds", type=int, default=5, help="measured blocks per side, interleaved")
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
