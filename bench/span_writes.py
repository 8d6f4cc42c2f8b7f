"""What writing span batches costs, and how long a request waits for the event loop meanwhile.

    .venv/bin/python -m bench.span_writes [--rounds 6] [--batches 5] [--batch-size 600] [--stored 48000]

(a) Wake-up latency. A second process (on CPU 1) sends a timestamped datagram every millisecond; the event loop (this
process, all its threads on CPU 0, as the gateway is pinned in the other benchmarks) reads each as
soon as it can, and the wake-up latency is the time from send to read. It is measured four ways
in the same run, in alternating rounds: with nothing written, while batches go through the store's
ordinary write pool, while they go through its low-priority background thread, as the span recorder
sends them, and, on that thread, written as they were before (every value a bound parameter). The
store is a real SQLite file, set up as `taskgate serve` sets it up (switch interval, frozen
start-up objects).

(b) Ids. The wall time and writer-thread CPU of one batch, on a table that already holds `--stored`
spans, with random version-4 ids against the time-ordered version-7 ids `taskgate.ids` makes (for
the span and its trace alike).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from multiprocessing.synchronize import Event

import orjson
from sqlalchemy.engine import Connection

from bench.common import CLIENT_CPU, GATEWAY_CPU, can_pin, percentile_ms, pin
from taskgate.ids import new_id
from taskgate.store import spans as span_rows
from taskgate.store.base import SpanRecord
from taskgate.store.database import Database, normalize_url
from taskgate.store.migrate import upgrade_to_head
from taskgate.store.sql import ENCODE_SLICE, SqlStore
from taskgate.store.tables import spans as span_table

PING_INTERVAL_S = 0.001
SETTLE_S = 0.05  # lets datagrams queued while batches were built be read before timing starts
SIDES = ("no writes", "ordinary pool", "background thread", "rows bound (before)")
BOUND_ROWS_PER_STATEMENT = 10


def pinger(sock: socket.socket, stop: Event) -> None:
    pin(0, CLIENT_CPU)
    while not stop.is_set():
        sock.send(struct.pack("d", time.perf_counter()))
        time.sleep(PING_INTERVAL_S)


def make_spans(project: str, count: int, make_id: Callable[[], str] = new_id) -> list[SpanRecord]:
    """Spans shaped like a finished call's: text in and out, model metadata, times, ids as served."""
    now = datetime.now(UTC)
    return [SpanRecord(id=make_id(), trace_id=make_id(), project_id=project, name="bench-call",
                       input={"text": "hello " * 20}, output="an answer " * 40,
                       meta={"model": "openai/gpt-4o-mini", "usage": {"input_tokens": 30, "output_tokens": 80}},
                       start_time=now, end_time=now) for _ in range(count)]


@contextlib.asynccontextmanager
async def sqlite_store(prefix: str) -> AsyncIterator[tuple[SqlStore, str]]:
    """A migrated SQLite store in a temporary directory, and a project in it; closed on leaving."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        database = Database(normalize_url(f"sqlite:///{data_dir}/spans.db"))
        await asyncio.to_thread(upgrade_to_head, database)
        store = SqlStore(database)
        try:
            yield store, await store.ensure_project("bench")
        finally:
            await store.close()


def random_id() -> str:
    return str(uuid.uuid4())


async def write_bound(store: SqlStore, spans: list[SpanRecord]) -> None:
    """The baseline for (a): span batches as they were written before. Each row's values are made
    on the event loop, ENCODE_SLICE spans between two turns (as now), then the writer thread binds
    every value as a parameter of a 10-row INSERT (binding holds the GIL), yielding between statements."""
    rows = []
    for count, span in enumerate(spans, start=1):
        rows.append(tuple(orjson.loads(span_rows.sqlite_row(span))))
        if count % ENCODE_SLICE == 0:
            await asyncio.sleep(0)
    await store.database.write(functools.partial(write_bound_rows, rows=rows), background=True)


def write_bound_rows(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    names = [f'"{column.name}"' for column in span_table.columns]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names[2:])  # after project_id, id
    for start in range(0, len(rows), BOUND_ROWS_PER_STATEMENT):
        if start:
            time.sleep(0)
        chunk = rows[start : start + BOUND_ROWS_PER_STATEMENT]
        values = ", ".join(["(" + ", ".join("?" * len(names)) + ")"] * len(chunk))
        conn.exec_driver_sql(f"INSERT INTO spans ({', '.join(names)}) VALUES {values} "
                             f"ON CONFLICT (project_id, id) DO UPDATE SET {updates}",
                             tuple(value for row in chunk for value in row))


async def id_order_cost(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Median wall and writer-thread CPU seconds of one batch, per kind of id, on a filled table."""
    costs: dict[str, tuple[float, float]] = {}
    for kind, make_id in (("random (v4)", random_id), ("time-ordered (v7)", new_id)):
        async with sqlite_store("taskgate-bench-ids-") as (store, project):
            for _ in range(args.stored // args.batch_size):
                await store.write_spans(make_spans(project, args.batch_size, make_id), background=True)
            walls, cpus = [], []
            for _ in range(args.rounds):
                rows = [span_rows.sqlite_row(span) for span in make_spans(project, args.batch_size, make_id)]

                def write(conn: Connection, rows: list[bytes] = rows) -> float:
                    started = time.thread_time()
                    span_rows.write_sqlite_rows(conn, rows)
                    return time.thread_time() - started

                started = time.perf_counter()
                cpus.append(await store.database.write(write, background=True))
                walls.append(time.perf_counter() - started)
            costs[kind] = (statistics.median(walls), statistics.median(cpus))
    return costs


Results = tuple[dict[str, list[float]], dict[str, list[float]]]  # latencies, write seconds per round


async def measure(args: argparse.Namespace) -> Results:
    sys.setswitchinterval(0.0005)  # as `taskgate serve` sets it
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.setblocking(False)
    latencies: list[float] = []

    def on_datagram() -> None:
        while True:
            try:
                data = receiver.recv(8)
            except BlockingIOError:
                return
            latencies.append(time.perf_counter() - struct.unpack("d", data)[0])

    async with sqlite_store("taskgate-bench-spans-") as (store, project):
        gc.collect()
        gc.freeze()
        stop = multiprocessing.Event()
        process = multiprocessing.Process(target=pinger, args=(sender, stop), daemon=True)
        process.start()
        loop = asyncio.get_running_loop()
        loop.add_reader(receiver.fileno(), on_datagram)
        results: dict[str, list[float]] = {side: [] for side in SIDES}
        write_seconds: dict[str, list[float]] = {side: [] for side in SIDES}
        try:
            for round_number in range(args.rounds):
                order = SIDES if round_number % 2 == 0 else tuple(reversed(SIDES))
                for side in order:
                    batches = [make_spans(project, args.batch_size) for _ in range(args.batches)]
                    await asyncio.sleep(SETTLE_S)
                    latencies.clear()
                    started = time.perf_counter()
                    for batch in batches:
                        if side == "no writes":
                            await asyncio.sleep(args.idle_s / args.batches)
                        elif side == "rows bound (before)":
                            await write_bound(store, batch)
                        else:
                            await store.write_spans(batch, background=side == "background thread")
                    results[side] += latencies
                    write_seconds[side].append(time.perf_counter() - started)
        finally:
            loop.remove_reader(receiver.fileno())
            stop.set()
            process.join()
    return results, write_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each side, alternating")
    parser.add_argument("--batches", type=int, default=5, help="batches written per round")
    parser.add_argument("--batch-size", type=int, default=600, help="spans per batch (one second at ~600 req/s)")
    parser.add_argument("--idle-s", type=float, default=0.3, help="length of a round with no writes")
    parser.add_argument("--stored", type=int, default=48_000, help="spans already in the table for (b)")
    args = parser.parse_args()
    pin(os.getpid(), GATEWAY_CPU)
    results, write_seconds = asyncio.run(measure(args))
    where = "event loop on CPU 0, sender on CPU 1" if can_pin() else "not pinned (fewer than 2 CPUs)"
    print(f"(a) wake-up latency of the event loop, datagram every {PING_INTERVAL_S * 1000:g} ms ({where}); "
          f"{args.rounds} rounds of {args.batches} batches of {args.batch_size} spans; ms")
    print(f"{'':<20} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'samples':>8} {'s/round':>8}")
    for side in SIDES:
        samples, seconds = results[side], write_seconds[side]
        per_round = f"{sum(seconds) / len(seconds):8.3f}"
        print(f"{side:<20} {percentile_ms(samples, 0.5):7.3f} {percentile_ms(samples, 0.9):7.3f} "
              f"{percentile_ms(samples, 0.99):7.3f} {max(samples) * 1000:7.2f} {len(samples):8d} {per_round}")
    for new, old in (("background thread", "ordinary pool"), ("background thread", "rows bound (before)")):
        ratio = [percentile_ms(results[new], q) / percentile_ms(results[old], q) for q in (0.9, 0.99)]
        print(f"{new} / {old}: p90 {ratio[0]:.2f}, p99 {ratio[1]:.2f}")
    costs = asyncio.run(id_order_cost(args))
    print(f"(b) one batch of {args.batch_size} spans on a table holding {args.stored}, median of {args.rounds}:")
    for kind, (wall, cpu) in costs.items():
        print(f"{kind:<20} {wall * 1000:7.1f} ms wall {cpu * 1000:7.1f} ms writer-thread CPU")
    (random_wall, random_cpu), (ordered_wall, ordered_cpu) = costs.values()
    print(f"time-ordered / random: wall {ordered_wall / random_wall:.2f}, CPU {ordered_cpu / random_cpu:.2f}")


if __name__ == "__main__":
    main()
