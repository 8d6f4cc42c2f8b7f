"""The CPU one root span costs to store on SQLite, encoding and writing, all threads, per tree.

A benchmark, not a test. In a migrated SQLite store of its own it writes 20 batches of 600 root
spans shaped like a finished call's (each its own trace, as `/v2/call` makes them), then times 15
more batches with the process's CPU clock and prints the median per span. The database's triggers
(trace roots, counts, names), indexes and the row encoding all count. `--tree DIR` (repeatable)
measures another checkout's `taskgate` (with that checkout's `bench.span_writes` spans) in a fresh
interpreter, trees alternating over `--rounds`.

Run from a checkout: `python -m bench.span_write_cost [--tree DIR ...] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_BATCHES, TIMED_BATCHES, BATCH = 20, 15, 600


async def _measure() -> float:
    from bench.span_writes import make_spans, sqlite_store

    async with sqlite_store("bench-span-cost-") as (store, project):
        for _ in range(WARM_BATCHES):
            await store.write_spans(make_spans(project, BATCH))
        spent = []
        for _ in range(TIMED_BATCHES):
            batch = make_spans(project, BATCH)
            started = time.process_time()
            await store.write_spans(batch)
            spent.append(time.process_time() - started)
    return statistics.median(spent) / BATCH * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="a checkout to measure (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_measure())))
        return
    trees = [tree.resolve() for tree in args.tree or [ROOT]]
    figures: dict[str, list[float]] = {str(tree): [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:  # run as a file from the tree, so `taskgate` (and the spans it writes) are the tree's
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child"], cwd=tree, check=True,
                                 capture_output=True, text=True, env={"PYTHONPATH": str(tree)})
            figures[str(tree)].append(float(out.stdout.strip().splitlines()[-1]))
    for tree, values in figures.items():
        print(f"{tree}: {statistics.median(values):.1f} us of CPU per root span stored "
              f"(median of {len(values)} rounds: {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
