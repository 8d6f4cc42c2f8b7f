"""The platform's reads with 200,000 spans stored: trace listing, one big trace, usage analytics.

    .venv/bin/python -m bench.platform_reads [--spans 200000] [--samples 200] [--no-postgres]

Seeds a project with `--spans` spans (traces of 1 to 12 spans and one of 50; five models, ten
functions, 20 customers and 3 environments as tags, spread over 35 days; about one span in three is
a plain trace span without usage) through the store's own batch write, into a SQLite file and,
when 127.0.0.1:5432 answers, into a fresh Postgres database of its own (vacuumed and analysed after
the load, as autovacuum would; dropped at the end). Then
starts `taskgate serve` on each (pinned to CPU 0, this client on CPU 1) and times, one request at
a time (at most `--budget-s` seconds per endpoint), p50 and p99 of:

* `GET /v2/traces` (the newest page; target p99 <= 50 ms), also filtered by a name that a tenth of
  the traces carry and by one that most carry (the same target),
* `GET /v2/traces/{id}` of the 50-span trace (<= 20 ms),
* `GET /v2/analytics/usage` over the last 30 days, by day, grouped by model (<= 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bench.common import CLIENT_CPU, GATEWAY_CPU, free_port, percentile_ms, pin, subprocess_server, wait_ready
from taskgate.ids import new_id
from taskgate.store import SqlStore, open_store
from taskgate.store.accounts import key_hash
from taskgate.store.base import SpanRecord

TRACES_PATH = "/v2/traces"
TRACE_PATH = "/v2/traces/{id}"
TARGETS_MS = {"usage 30 days by model": 200.0, "get 50-span trace": 20.0, "list traces": 50.0,
              "list traces named like one function": 50.0, "list traces named like most": 50.0}
MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5",
          "local/gemma-3-270m")
FUNCTIONS = tuple(f"fn-{index}" for index in range(10))
CUSTOMERS = tuple(f"customer-{index}" for index in range(20))
ENVIRONMENTS = ("prod", "staging", "dev")
DAYS = 35
BATCH = 2000
WARMUPS = 3
MIN_SAMPLES = 5
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def _span(project_id: str, trace_id: str, parent: str | None, start: datetime, rng: random.Random) -> SpanRecord:
    used = parent is None or rng.random() < 0.5  # roots are calls; about half the children are too
    tokens = (rng.randint(20, 2000), rng.randint(5, 800)) if used else (0, 0)
    return SpanRecord(
        id=new_id(), trace_id=trace_id, project_id=project_id, name=rng.choice(FUNCTIONS) if used else "step",
        type="call" if used else "tool", parent_id=parent, start_time=start,
        end_time=start + timedelta(milliseconds=rng.randint(50, 4000)),
        input={"question": f"q{rng.randint(0, 10**6)}"}, output={"answer": "a" * rng.randint(5, 60)},
        model_chain=[rng.choice(MODELS)] if used else [], model_used=rng.choice(MODELS) if used else None,
        attempts=1 if used else 0,
        usage={"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens)} if used else {},
        cost=round(sum(tokens) * 2e-6, 8) if used else None,
        tags={"customer": rng.choice(CUSTOMERS), "env": rng.choice(ENVIRONMENTS)},
        function_name=rng.choice(FUNCTIONS) if used else None,
    )


def _trace(project_id: str, size: int, start: datetime, rng: random.Random) -> list[SpanRecord]:
    trace_id = new_id()
    root = _span(project_id, trace_id, None, start, rng)
    spans = [root]
    for index in range(1, size):
        parent = rng.choice(spans).id
        spans.append(_span(project_id, trace_id, parent, start + timedelta(milliseconds=10 * index), rng))
    return spans


async def seed(store: SqlStore, total: int) -> tuple[str, str]:
    """The project's key and the id of its 50-span trace, after writing `total` spans."""
    rng = random.Random(15)
    key = await store.create_api_key(f"bench-{uuid.uuid4().hex[:8]}")
    project_id = await store.project_for_key_hash(key_hash(key))
    assert project_id is not None
    now = datetime.now(UTC)
    big = _trace(project_id, 50, now - timedelta(days=3), rng)
    pending, written = list(big), 0
    began = time.perf_counter()
    while written + len(pending) < total:
        size = min(rng.choice((1, 1, 2, 3, 4, 5, 8, 12)), total - written - len(pending))
        start = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
        pending += _trace(project_id, size, start, rng)
        if len(pending) >= BATCH:
            await store.write_spans(pending)
            written += len(pending)
            pending = []
    await store.write_spans(pending)
    written += len(pending)
    print(f"  seeded {written} spans in {time.perf_counter() - began:.1f}s", flush=True)
    return key, big[0].trace_id


async def timed(session: aiohttp.ClientSession, url: str, key: str, samples: int,
                budget_s: float) -> list[float] | None:
    """Up to `samples` timings after WARMUPS untimed requests; fewer when `budget_s` runs out first
    (an endpoint far over its target would otherwise take hours), but never fewer than MIN_SAMPLES.
    None when a single request takes longer than the whole budget."""
    headers = {"Authorization": f"Bearer {key}"}
    times: list[float] = []
    deadline = time.monotonic() + budget_s
    for index in range(WARMUPS + samples):
        if len(times) >= MIN_SAMPLES and time.monotonic() > deadline:
            break
        began = time.perf_counter()
        try:
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=budget_s)) as resp:
                await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"GET {url} answered {resp.status}: {(await resp.text())[:300]}")
        except TimeoutError:
            return None
        if index >= WARMUPS:
            times.append(time.perf_counter() - began)
    return times


async def measure(database_url: str, data_dir: str, spans: int, samples: int,
                  budget_s: float) -> dict[str, dict[str, float]]:
    store = await open_store(database_url)
    assert isinstance(store, SqlStore)
    try:
        key, big_trace = await seed(store, spans)
    finally:
        await store.close()
    if database_url.startswith("postgresql"):
        _vacuum(database_url.rpartition("/")[2])
    port = free_port()
    env = {**os.environ, "TASKGATE_DATABASE_URL": database_url}
    for name in list(env):
        if name.endswith("_API_KEY") or name.endswith("_BASE_URL"):
            del env[name]
    command = [sys.executable, "-c", "from taskgate.cli import main; main()", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", data_dir, "--log-level", "warning"]
    now = datetime.now(UTC)
    usage_query = urlencode([("from_date", (now - timedelta(days=30)).isoformat()), ("to_date", now.isoformat()),
                             ("granularity", "day"), ("group_by", "model")])
    urls = {  # the slowest last: one that overruns the budget ends the timings of this store
        "usage 30 days by model": f"/v2/analytics/usage?{usage_query}",
        "get 50-span trace": TRACE_PATH.format(id=big_trace),
        "list traces": TRACES_PATH,
        # A name filter is a substring: one function's name (a tenth of the traces), and one that
        # every function's name holds (most of them).
        "list traces named like one function": f"{TRACES_PATH}?name=FN-3",
        "list traces named like most": f"{TRACES_PATH}?name=fn-",
    }
    figures = {}
    with subprocess_server("taskgate", command, env, f"http://127.0.0.1:{port}", GATEWAY_CPU) as server:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, server, "/health")
            for name, path in urls.items():
                times = await timed(session, server.url + path, key, samples, budget_s)
                if times is None:
                    figures[name] = {"p50_ms": budget_s * 1000, "p99_ms": budget_s * 1000, "samples": 0}
                    break  # the server is still busy with that request: later timings would be its
                figures[name] = {"p50_ms": round(percentile_ms(times, 0.5), 2),
                                 "p99_ms": round(percentile_ms(times, 0.99), 2), "samples": len(times)}
    return figures


def _postgres_database() -> tuple[str, str] | None:
    """A fresh database of this benchmark's own: its URL and name, or None when Postgres is not there."""
    try:
        import psycopg

        name = f"taskgate_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # not installed, not running, refusing: no Postgres figures
        print(f"postgres skipped: {exc}")
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def _vacuum(name: str) -> None:
    """What autovacuum does after a bulk load, done now: table statistics for the planner, and the
    visibility map, without which an index-only scan still reads every row."""
    import psycopg

    with psycopg.connect(PG_ADMIN.replace("dbname=postgres", f"dbname={name}"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE spans")


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(store: str, figures: dict[str, dict[str, float]]) -> None:
    for name, values in figures.items():
        if not values["samples"]:
            print(f"{store:<9} {name:<24} one request took over {values['p99_ms'] / 1000:.0f} s: OVER", flush=True)
            continue
        verdict = "ok" if values["p99_ms"] <= TARGETS_MS[name] else "OVER"
        print(f"{store:<9} {name:<24} p50 {values['p50_ms']:8.2f} ms   p99 {values['p99_ms']:8.2f} ms   "
              f"(target p99 <= {TARGETS_MS[name]:.0f} ms, {values['samples']} samples) {verdict}", flush=True)


Measure = Callable[[str, str, int, int, float], Awaitable[dict[str, Any]]]


def on_each_store(prefix: str, measure: Measure, report: Callable[[str, dict[str, Any]], None],
                  args: argparse.Namespace) -> dict[str, Any]:
    """`measure(database_url, data_dir, spans, samples, budget_s)` on SQLite, then on a Postgres
    database of its own (unless --no-postgres, or none answers), each in a fresh data directory;
    the figures by store, each reported as it is taken."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        print("sqlite:", flush=True)
        results["sqlite"] = asyncio.run(measure(f"sqlite:///{data_dir}/bench.db", data_dir, args.spans,
                                                args.samples, args.budget_s))
        report("sqlite", results["sqlite"])
    postgres = None if args.no_postgres else _postgres_database()
    if postgres is not None:
        url, name = postgres
        try:
            with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
                print("postgres:", flush=True)
                results["postgres"] = asyncio.run(measure(url, data_dir, args.spans, args.samples, args.budget_s))
                report("postgres", results["postgres"])
        finally:
            _drop(name)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--budget-s", type=float, default=60.0, help="the most seconds of timing per endpoint")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers and the database are cleaned up
    pin(os.getpid(), CLIENT_CPU)
    results = on_each_store("taskgate-platform-", measure, report, args)
    print({"bench": "platform_reads", "spans": args.spans, "samples": args.samples, **results})


if __name__ == "__main__":
    main()
