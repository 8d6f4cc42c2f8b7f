"""What a key's limits cost per call: the check before a model call and the count after it.

A benchmark, not a test. In one process, on a SQLite store of its own, it times:

- the limit check alone (`QuotaGate.admit` for the call's model, `charge` of its span, and the
  wait for Redis's answer), per call, for a key without limits and for a key with every limit
  (rpm, tpm, a budget and a model list) and its project's, counted in process and in Redis;
- a whole engine call (`Engine.run` on the in-memory scripted adapter: prompt, generation,
  pricing, span) with each key, so the check is seen against what a call costs anyway.

Medians of batch means, wall clock and the process's CPU. Redis is the machine's at
127.0.0.1:6379 (database 11, a key prefix of the run's own, deleted at the end; `--redis URL` for
another); without one, the Redis rows are skipped with the reason. On a shared machine, read the
figures as indications: neighbours move the wall clock more than the CPU time.

Run from a checkout: `python -m bench.limits [--calls 4000] [--batches 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from taskgate.config import Settings
from taskgate.engine.engine import Engine
from taskgate.engine.quotas.caller import Admission, Caller, current, settle
from taskgate.engine.quotas.counters import LocalCounters
from taskgate.engine.quotas.gate import QuotaGate
from taskgate.engine.quotas.ledger import UsageLedger
from taskgate.engine.quotas.redis_counters import RedisCounters
from taskgate.engine.quotas.rules import NO_QUOTA, Quota
from taskgate.engine.task import Task
from taskgate.providers.base import ChatResponse, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.scripted import ScriptedAdapter
from taskgate.store import open_store
from taskgate.store.base import SpanRecord, Store
from taskgate.telemetry.recorder import SpanRecorder

MODEL = "openai/gpt-4o-mini"
FULL = Quota(rpm=1_000_000, tpm=10_000_000_000, budget_usd=1_000_000.0, period="day", models=("openai/*",))
Timing = tuple[float, float, float]  # (wall, CPU, user-mode CPU) µs per call
CONCURRENCY = 32  # requests checked at once, as a loaded server has them (bench.compat's c=32)


def _span(project_id: str) -> SpanRecord:
    now = datetime.now(UTC)
    return SpanRecord(id=str(uuid.uuid4()), trace_id="t", project_id=project_id, name="bench", type="call",
                      parent_id=None, start_time=now, end_time=now, input="x", output="y", error=None,
                      status="ok", model_chain=[MODEL], model_used=MODEL, models_failed=[], attempts=1,
                      usage={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}, cost=0.0000045)


async def _timed(work: Callable[[], Awaitable[None]], calls: int, batches: int, concurrency: int = 1) -> Timing:
    """Median over `batches` of the mean per call, after a warm-up batch; `concurrency` requests at once."""

    async def worker() -> None:
        for _ in range(calls // concurrency):
            await work()

    walls, cpus, users = [], [], []
    calls = calls // concurrency * concurrency
    for batch in range(batches + 1):
        wall, cpu, user = time.perf_counter(), time.process_time(), _user_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if batch:
            walls.append((time.perf_counter() - wall) / calls * 1e6)
            cpus.append((time.process_time() - cpu) / calls * 1e6)
            users.append((_user_time() - user) / calls * 1e6)
    return statistics.median(walls), statistics.median(cpus), statistics.median(users)


def _user_time() -> float:
    """CPU in user mode: Taskgate's (and its libraries') own work, without the kernel's socket
    calls, which a loaded machine makes slow and noisy."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


async def _measure(gate: QuotaGate, store: Store, project_id: str, calls: int, batches: int,
                   ) -> dict[str, tuple[Timing, Timing, Timing, Timing]]:
    """{key: (check and count, the same at CONCURRENCY, whole call, check alone)} for a key without
    limits and one with every limit."""
    adapter = ScriptedAdapter()
    registry = ProviderRegistry(Settings.from_env({}), adapters={"openai": adapter})
    recorder = SpanRecorder(store, flush_interval=0.5)
    await recorder.start()
    engine = Engine(store, recorder, registry, MODEL, quotas=gate)
    answer = ChatResponse(text="hello there", usage=Usage(input_tokens=10, output_tokens=5))
    callers = {"no limits": Caller(str(uuid.uuid4()), project_id, False, False, NO_QUOTA, NO_QUOTA),
               "every limit": Caller(str(uuid.uuid4()), project_id, False, False, FULL, FULL)}
    span = _span(project_id)
    found: dict[str, tuple[Timing, Timing, Timing, Timing]] = {}
    try:
        for name, caller in callers.items():
            async def check(caller: Caller = caller) -> None:
                current.set(Admission(caller))  # a new request's admission, as authentication makes it
                await gate.admit([MODEL])
                gate.charge(span)
                await settle()

            async def admit_only(caller: Caller = caller) -> None:
                current.set(Admission(caller))
                await gate.admit([MODEL])

            async def call(caller: Caller = caller) -> None:
                current.set(Admission(caller))
                adapter.add(answer)
                await engine.run(Task(project_id=project_id, function_name="bench", input="hello",
                                      record_function=False))

            found[name] = (await _timed(check, calls, batches), await _timed(check, calls, batches, CONCURRENCY),
                           await _timed(call, max(1, calls // 4), batches), await _timed(admit_only, calls, batches))
    finally:
        await recorder.close()
    return found


async def _run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as directory:
        store = await open_store(f"sqlite:///{Path(directory) / 'taskgate.db'}")
        try:
            project_id = await store.ensure_project("bench")
            ledger = UsageLedger(store.keys)
            rows = {"in process (SQLite store)": QuotaGate(LocalCounters(ledger.spent), ledger)}
            prefix = f"taskgate-bench-limits:{uuid.uuid4().hex[:8]}:"
            redis_gate = QuotaGate(RedisCounters(args.redis, prefix, ledger.spent, LocalCounters(ledger.spent)), ledger)
            rows["Redis"] = redis_gate
            for label, gate in rows.items():
                found = await _measure(gate, store, project_id, args.calls, args.batches)
                if label == "Redis" and redis_gate._redis is not None and redis_gate._redis.degraded:
                    print(f"Redis at {args.redis} is unreachable: its rows were counted in process, skipped")
                    continue
                _report(label, found)
            await _forget(args.redis, prefix)
            await redis_gate.aclose()
        finally:
            await store.close()


def _report(label: str, found: dict[str, tuple[Timing, Timing, Timing, Timing]]) -> None:
    (free_check, free_busy, free_call, _), (check, busy, call, admit) = found["no limits"], found["every limit"]
    print(f"{label} (median us per call: wall / CPU / user-mode CPU):")
    rows = [("check + count, key without limits", free_check), (f"  the same, {CONCURRENCY} at once", free_busy),
            ("check alone, key with every limit", admit),
            ("check + count, key with every limit", check), (f"  the same, {CONCURRENCY} at once", busy),
            ("whole call, key without limits", free_call), ("whole call, key with every limit", call)]
    for name, (wall, cpu, user) in rows:
        print(f"  {name:36} {wall:8.1f} / {cpu:7.1f} / {user:7.1f}")
    print(f"  check + count with every limit / whole call without: {check[0] / free_call[0]:.2f} wall, "
          f"{check[2] / free_call[2]:.2f} user CPU; whole call with / without: {call[0] / free_call[0]:.2f} wall, "
          f"{call[2] / free_call[2]:.2f} user CPU")


async def _forget(url: str, prefix: str) -> None:
    from redis import asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
    except (RedisError, OSError):
        pass
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="checks per batch (whole calls: a quarter)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
