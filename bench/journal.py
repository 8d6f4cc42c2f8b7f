"""What the span journal costs a call, on the request path: with and without it, in one process.

A benchmark, not a test. A call pays `admit()` (is there room?) and `record()` (keep the span for
its batch), and a stream also `open()` before its first byte. Here spans shaped like a finished
call's (`bench.span_writes.make_spans`) go through a SpanRecorder on a real SQLite store, with a
journal in a temporary directory and without one, the two alternating block by block so both see
the same machine. Each block is timed with the wall clock (the append is a write(2): system time
counts), then written to the store untimed, as the background writer would. The median over
blocks, per call, is printed, and the difference is the journal's cost.

Run from a checkout: `python -m bench.journal [--blocks 40] [--calls 500]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.span_writes import make_spans, sqlite_store
from taskgate.store.base import SpanRecord
from taskgate.telemetry.journal import SpanJournal
from taskgate.telemetry.recorder import SpanRecorder


def _time_calls(recorder: SpanRecorder, spans: list[SpanRecord], streaming: bool) -> float:
    """Seconds per call for what a call does on the request path to record its span."""
    started = time.perf_counter()
    for span in spans:
        recorder.admit()
        if streaming:
            recorder.open(span)
        recorder.record(span)
    return (time.perf_counter() - started) / len(spans)


async def _measure(blocks: int, calls: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"no journal": [], "journal": [], "journal, stream": []}
    async with sqlite_store("bench-journal-") as (store, project):
        with tempfile.TemporaryDirectory(prefix="bench-journal-") as directory:
            plain = SpanRecorder(store, flush_interval=3600)
            journaled = SpanRecorder(store, flush_interval=3600,
                                     journal=SpanJournal(Path(directory), 1 << 30))
            await plain.start()
            await journaled.start()
            for block in range(blocks + 2):  # the first two warm up
                for name, recorder, streaming in (("no journal", plain, False), ("journal", journaled, False),
                                                  ("journal, stream", journaled, True)):
                    per_call = _time_calls(recorder, make_spans(project, calls), streaming)
                    await recorder.flush()
                    if block >= 2:
                        figures[name].append(per_call)
            await plain.close()
            await journaled.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--calls", type=int, default=500, help="calls per timed block")
    args = parser.parse_args()
    figures = asyncio.run(_measure(args.blocks, args.calls))
    medians = {name: statistics.median(values) * 1e6 for name, values in figures.items()}
    for name, value in medians.items():
        print(f"{name:>16}: {value:6.1f} us per call (median of {args.blocks} blocks of {args.calls})")
    base = medians["no journal"]
    print(f"the journal costs {medians['journal'] - base:.1f} us per call, "
          f"{medians['journal, stream'] - base:.1f} us per stream (open + record)")


if __name__ == "__main__":
    main()
