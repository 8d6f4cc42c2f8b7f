"""What Redis adds to a call on its two per-call paths: the cache look-up and the span publish.

A benchmark, not a test. One process, one uvloop event loop, alternating rounds of each side:

- **cache look-up (hit)**: `ResultCache.get` of a cached answer, from the store's cache table (a
  single node, SQLite) and from Redis (`replicas.shared_cache`); and the same for a miss.
- **span publish**: what a call's span costs before its answer may go out: `SpanService.record` then
  `settled` (which, with Redis, waits for the pipeline that carries the span), one call at a time
  and 32 calls at once (their spans then share pipelines).

It reports the median wall µs per call and the CPU µs per call (the process's CPU clock) of each
side, and their difference. The machine's Redis (`--redis`, default redis://127.0.0.1:6379/0) is
used under a key prefix of the run's own, deleted at the end. The machine may be shared: compare
the sides of one run, not runs.

Run from a checkout: `python -m bench.redis_paths [--rounds 7] [--calls 2000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import uvloop

from bench.span_writes import make_spans
from taskgate.engine.cache import ResultCache
from taskgate.engine.spans import SpanService
from taskgate.engine.task import Result
from taskgate.providers.base import Usage
from taskgate.replicas.redis_link import RedisLink
from taskgate.replicas.shared_cache import SharedCache
from taskgate.replicas.span_mirror import SpanMirror
from taskgate.store import SqlStore, open_store
from taskgate.telemetry import SpanRecorder

CONCURRENT = 32


@dataclass
class Figures:
    wall_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


def answer() -> Result:
    return Result(span_id="", trace_id="", text=None, payload={"name": "Ada", "born": 1815, "tags": ["math"] * 5},
                  tool_calls=[], finish_reason="stop", stop_sequence=None, usage=Usage(), cost=0.0,
                  model="openai/gpt-4o-mini", attempts=1)


async def timed(calls: int, one: Callable[[int], Awaitable[object]], figures: Figures, concurrent: int = 1) -> None:
    """`calls` calls of `one`, `concurrent` at a time; per-call wall and CPU µs of the round."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, calls, concurrent):
        await asyncio.gather(*(one(index) for index in range(start, min(start + concurrent, calls))))
    figures.wall_us.append((time.perf_counter() - wall) / calls * 1e6)
    figures.cpu_us.append((time.process_time() - cpu) / calls * 1e6)


async def measure(args: argparse.Namespace) -> dict[str, tuple[Figures, Figures]]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    link = RedisLink(args.redis, prefix)
    if not await link.ping():
        raise SystemExit(f"Redis does not answer at {args.redis}")
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as data_dir:
        store = await open_store(f"sqlite:///{data_dir}/taskgate.db")
        assert isinstance(store, SqlStore)
        project = await store.ensure_project("bench")
        local_cache, shared_cache = ResultCache(store), ResultCache(SharedCache(link, store))
        for cache in (local_cache, shared_cache):
            await cache.put(project, "hit", answer(), 3600)
        recorder = SpanRecorder(store, flush_interval=3600)  # the batch write is the same on both sides
        plain, mirrored = SpanService(store, recorder), SpanService(store, recorder, mirror=SpanMirror(link))
        spans = make_spans(project, args.calls)

        async def publish(service: SpanService, index: int) -> None:
            service.record(spans[index])
            await service.settled(project, spans[index].id)

        sides: dict[str, tuple[Callable[[int], Awaitable[object]], Callable[[int], Awaitable[object]], int]] = {
            "cache look-up, hit": (lambda _: local_cache.get(project, "hit"),
                                   lambda _: shared_cache.get(project, "hit"), 1),
            "cache look-up, miss": (lambda i: local_cache.get(project, f"miss{i}"),
                                    lambda i: shared_cache.get(project, f"miss{i}"), 1),
            "span publish, 1 at a time": (lambda i: publish(plain, i), lambda i: publish(mirrored, i), 1),
            f"span publish, {CONCURRENT} at once": (lambda i: publish(plain, i), lambda i: publish(mirrored, i),
                                                    CONCURRENT),
        }
        results = {name: (Figures(), Figures()) for name in sides}
        for _ in range(args.rounds):  # alternating, so the machine's other load lands on both sides alike
            for name, (without, with_redis, concurrent) in sides.items():
                await timed(args.calls, without, results[name][0], concurrent)
                await timed(args.calls, with_redis, results[name][1], concurrent)
        recorder._pending.clear()  # nothing of this run is worth writing
        await recorder.close()
        await store.close()
    await link.client.delete(*[key async for key in link.client.scan_iter(match=f"{prefix}*", count=1000)] or ["-"])
    await link.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    results = uvloop.run(measure(args))
    print(f"median of {args.rounds} rounds of {args.calls} calls; µs per call (wall / CPU)")
    print(f"{'path':<28} {'without Redis':>16} {'with Redis':>16} {'added':>16}")
    for name, (without, with_redis) in results.items():
        plain = statistics.median(without.wall_us), statistics.median(without.cpu_us)
        redis = statistics.median(with_redis.wall_us), statistics.median(with_redis.cpu_us)
        print(f"{name:<28} {plain[0]:>7.1f} / {plain[1]:>6.1f} {redis[0]:>7.1f} / {redis[1]:>6.1f} "
              f"{redis[0] - plain[0]:>7.1f} / {redis[1] - plain[1]:>6.1f}")


if __name__ == "__main__":
    main()
