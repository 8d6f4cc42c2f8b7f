"""Memory of `taskgate serve`: idle RSS of one process and of each process under `--workers 2`, and
peak RSS under 1,000 concurrent streams with the RSS 10 s after they end.

    python -m bench.memory [--streams 1000]

No local model is used. The upstream is the fake provider on a thread of this process, scripted so
that each stream lasts about two seconds and all of them are in flight at once. Targets (issue 19):
an idle worker <= 80 MB; under 1,000 streams <= 700 MB at peak, back to <= 2x idle within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import post
from tests.stream_load import concurrent_streams

SETTLE_S = 3.0
AFTER_S = 10.0
SAMPLE_S = 0.02


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def children(parent: int) -> dict[int, str]:
    """pid -> module (`-m` argument) of `parent`'s children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if ppid == parent:
                found[int(entry.name)] = argv[2].decode() if len(argv) > 2 else argv[0].decode()
    return found


def idle_single(fake: FakeProvider, root: Path) -> tuple[float, float]:
    """(idle after start, idle after one call of each common kind) of a one-process server."""
    with ServerProcess(fake, root / "single") as server:
        assert server.process is not None
        time.sleep(SETTLE_S)
        started = rss_mb(server.process.pid)
        post(f"{server.url}/v2/call", {"name": "warm", "input": "x"})
        post(f"{server.url}/v3/compat/chat/completions",
             {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        post(f"{server.url}/v2/call/stream", {"name": "warm", "input": "x"})
        time.sleep(SETTLE_S)
        return started, rss_mb(server.process.pid)


def idle_workers(fake: FakeProvider, root: Path) -> dict[str, float]:
    with ServerProcess(fake, root / "workers", args=("--workers", "2")) as server:
        assert server.process is not None
        time.sleep(SETTLE_S + 2)
        figures = {"supervisor": rss_mb(server.process.pid)}
        for pid, module in sorted(children(server.process.pid).items()):
            figures[f"{module.rsplit('.', 1)[-1]} {pid}"] = rss_mb(pid)
        return figures


def streams(fake: FakeProvider, root: Path, count: int) -> dict[str, float]:
    with ServerProcess(fake, root / "streams") as server:
        assert server.process is not None
        pid = server.process.pid
        time.sleep(SETTLE_S)
        idle = rss_mb(pid)
        for _ in range(count):
            fake.script("gpt-4o-mini", Behaviour(text="one two three four five", event_delay_s=0.4))
        peak = idle
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(pid))
                time.sleep(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        failures = asyncio.run(concurrent_streams(f"{server.url}/v2/call/stream", server.api_key,
                                                  {"name": "load", "input": "x"}, count))
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        time.sleep(AFTER_S)
        return {"idle": idle, "peak": peak, "after": rss_mb(pid), "failures": len(failures), "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    with FakeProvider(record=False) as fake, tempfile.TemporaryDirectory(prefix="taskgate-memory-") as tmp:
        root = Path(tmp)
        started, warmed = idle_single(fake, root)
        print(f"one process, idle after start:         {started:6.1f} MB   (target <= 80)")
        print(f"one process, idle after warm-up calls: {warmed:6.1f} MB")
        for name, mb in idle_workers(fake, root).items():
            print(f"--workers 2, {name:28s} {mb:6.1f} MB")
        load = streams(fake, root, args.streams)
        print(f"{args.streams} concurrent streams through one process ({load['seconds']:.1f} s, "
              f"{int(load['failures'])} failed): idle {load['idle']:.1f} MB, peak {load['peak']:.1f} MB "
              f"(target <= 700), {AFTER_S:.0f} s after {load['after']:.1f} MB = "
              f"{load['after'] / load['idle']:.2f}x idle (target <= 2x)")
    print(f"machine: {os.cpu_count()} cores, shared with other work (figures are RSS, not timings)")


if __name__ == "__main__":
    main()
