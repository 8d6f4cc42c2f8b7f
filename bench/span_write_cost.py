"""The CPU one root span costs to store on SQLite, encoding and writing, all threads, per tree.

A benchmark, not a test. In a migrated SQLite store of its own it writes 20 batches of 600 root
spans shaped like a finished call's (each its own trace, as `/v2/call` makes them), then times 15
more batches with the process's CPU clock and prints the median per span. The database's triggers
(trace roots, counts, names), indexes and the row encoding all count. `--tree DIR` (repeatable)
measures another checkout's `taskgate` (with that checkout's `bench.span_writes` spans) in a fresh
interpreter, trees alternating over `--rounds`. `--priced` gives every span what a priced model call's
has beside that (usage, cost, model, function and two tags, made here alike for every tree): the spans
the usage rollups' triggers (migration 0014) act on; without it those triggers do not fire.

Run from a checkout: `python -m bench.span_write_cost [--tree DIR ...] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARM_BATCHES, TIMED_BATCHES, BATCH = 20, 15, 600


def _priced(spans: list[Any]) -> list[Any]:
    """The spans as a priced call's: the fields a usage report sums and groups by."""
    return [dataclasses.replace(span, model_used="openai/gpt-4o-mini", function_name=f"fn-{index % 10}",
                                usage={"input_tokens": 30, "output_tokens": 80, "total_tokens": 110},
                                cost=0.000123, tags={"customer": f"customer-{index % 20}", "env": "prod"})
            for index, span in enumerate(spans)]


async def _measure(priced: bool) -> float:
    from bench.span_writes import make_spans as plain_spans
    from bench.span_writes import sqlite_store

    def make_spans(project: str, count: int) -> list[Any]:
        spans = plain_spans(project, count)
        return _priced(spans) if priced else spans

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
    parser.add_argument("--priced", action="store_true", help="spans with usage, cost, model, function and tags")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_measure(args.priced))))
        return
    trees = [tree.resolve() for tree in args.tree or [ROOT]]
    figures: dict[str, list[float]] = {str(tree): [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:  # run as a file from the tree, so `taskgate` (and the spans it writes) are the tree's
            child = [sys.executable, str(Path(__file__).resolve()), "--child", *(["--priced"] if args.priced else [])]
            out = subprocess.run(child, cwd=tree, check=True,
                                 capture_output=True, text=True, env={"PYTHONPATH": str(tree)})
            figures[str(tree)].append(float(out.stdout.strip().splitlines()[-1]))
    for tree, values in figures.items():
        print(f"{tree}: {statistics.median(values):.1f} us of CPU per root span stored "
              f"(median of {len(values)} rounds: {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
