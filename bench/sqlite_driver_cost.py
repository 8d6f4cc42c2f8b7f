"""What the SQLite driver swap costs the rest of the store: sqlean.py with sqlite-vec loaded (what the
store uses when it can) against CPython's own sqlite3, in one process, on one file, in turns.

A benchmark, not a test. It seeds a SQLite store with `--spans` spans as `bench.platform_reads` does,
then opens it twice: once with the vector extension (sqlean.py's SQLite 3.50 with vec0 loaded into each
connection) and once without (the standard module, this Python's SQLite). The two take turns, sample by
sample, so a busy neighbour slows both alike:
* the CPU one root span costs to write, in batches of 600 (`bench.span_write_cost`'s measure), and
* the wall time of the store's reads behind the platform's endpoints: the newest traces, traces by a
  name, one 50-span trace, and usage over 30 days by model.
Prints each figure's median for both drivers and the ratio of sqlean's to the standard module's.

Run from a checkout: `python -m bench.sqlite_driver_cost [--spans 50000] [--samples 40]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.platform_reads import seed
from bench.span_writes import make_spans
from taskgate.store import SqlStore, open_store
from taskgate.store.accounts import key_hash
from taskgate.store.base import UsageQuery

BATCH = 600


async def _cpu_per_span(store: SqlStore, project: str) -> float:
    batch = make_spans(project, BATCH)
    started = time.process_time()
    await store.write_spans(batch)
    return (time.process_time() - started) / BATCH * 1e6


async def _wall_ms(read: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await read()
    return (time.perf_counter() - started) * 1000


def _reads(store: SqlStore, project: str, trace_id: str,
           usage: UsageQuery) -> dict[str, Callable[[], Awaitable[object]]]:
    """The store's reads behind the platform's endpoints (as bench.platform_reads times them over HTTP)."""
    return {
        "list traces (ms)": lambda: store.list_traces(project),
        "traces named like one function (ms)": lambda: store.list_traces(project, name="FN-3"),
        "get 50-span trace (ms)": lambda: store.get_trace(project, trace_id),
        "usage 30 days by model (ms)": lambda: store.usage_report(project, usage),
    }


async def measure(spans: int, samples: int) -> dict[str, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory(prefix="bench-driver-") as directory:
        url = f"sqlite:///{Path(directory) / 'taskgate.db'}"
        seeder = await open_store(url, vector_extension=False)
        assert isinstance(seeder, SqlStore)
        try:
            key, big_trace = await seed(seeder, spans)
            project = await seeder.ensure_project("bench-writes")
        finally:
            await seeder.close()
        stores: dict[str, SqlStore] = {}
        for name, extension in (("sqlean+sqlite-vec", True), ("sqlite3", False)):
            opened = await open_store(url, vector_extension=extension)
            assert isinstance(opened, SqlStore)
            stores[name] = opened
        figures: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
        try:
            if stores["sqlean+sqlite-vec"].database.vector_extension != "sqlite-vec":
                raise SystemExit("sqlite-vec does not load here: nothing to compare")
            owner = await stores["sqlite3"].project_for_key_hash(key_hash(key))
            assert owner is not None
            now = datetime.now(UTC)
            usage = UsageQuery(start=now - timedelta(days=30), end=now, granularity="day", group_by=("model",))
            for _ in range(samples):
                for name, store in stores.items():
                    figures[name].setdefault("span write (us CPU)", []).append(await _cpu_per_span(store, project))
                    for label, read in _reads(store, owner, big_trace, usage).items():
                        figures[name].setdefault(label, []).append(await _wall_ms(read))
        finally:
            for store in stores.values():
                await store.close()
        return figures


def _hash(key: str) -> str:
    from taskgate.store.accounts import key_hash

    return key_hash(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.spans, args.samples))
    for label in figures["sqlite3"]:
        swapped, standard = statistics.median(figures["sqlean+sqlite-vec"][label]), statistics.median(
            figures["sqlite3"][label])
        print(f"{label:40} sqlean+sqlite-vec {swapped:8.2f}   sqlite3 {standard:8.2f}   "
              f"ratio {swapped / standard:.2f}  (medians of {len(figures['sqlite3'][label])})")


if __name__ == "__main__":
    main()
