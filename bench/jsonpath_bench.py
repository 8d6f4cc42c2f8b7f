"""Cost of the incremental JSON path parser per streamed chunk, and whether it stays linear.

The v2 stream feeds every model chunk through JsonPathStream, so its per-chunk cost is added to the
time to each event. Figures: median and p99 of one feed() of a 4-character chunk over a ~10 KB nested
document, the ratio of whole-stream time for 100 KB vs 10 KB (linear parsing gives about 10), and
json.loads of the whole text as a same-process reference for what one C-speed pass costs.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from taskgate.api.v2.json_paths import JsonPathStream

CHUNK_CHARS = 4


def _record(i: int) -> dict[str, Any]:
    """One list item shaped like typical structured output: strings, numbers, nested arrays, escapes."""
    return {
        "id": i,
        "name": f"Person number {i}",
        "email": f"person{i}@example.com",
        "score": i * 1.25 - 3.5,
        "active": i % 2 == 0,
        "manager": None,
        "tags": ["alpha", "beta", f"tag-{i % 7}"],
        "matrix": [[i, i + 1], [i * 2, -i]],
        "address": {"street": f"{i} Main Street", "city": "Zürich", "zip": f"{8000 + i}"},
        "bio": f'Line one of {i}.\nSaid "hello" \\ waved; café ☕ {i * 31}',
    }


def build_document(target_bytes: int) -> str:
    """A `{"people": [...]}` JSON text of about `target_bytes` characters."""
    people: list[dict[str, Any]] = []
    text = ""
    while len(text) < target_bytes:
        people.append(_record(len(people)))
        text = json.dumps({"people": people, "total": len(people)}, ensure_ascii=False)
    return text


def _chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]


def _per_chunk_ns(chunks: list[str], repeats: int) -> list[int]:
    clock = time.perf_counter_ns
    samples: list[int] = []
    for _ in range(repeats):
        parser = JsonPathStream()
        feed = parser.feed
        for chunk in chunks:
            start = clock()
            feed(chunk)
            samples.append(clock() - start)
        parser.finish()
    return samples


def _whole_stream_ns(chunks: list[str]) -> int:
    parser = JsonPathStream()
    feed = parser.feed
    start = time.perf_counter_ns()
    for chunk in chunks:
        feed(chunk)
    parser.finish()
    return time.perf_counter_ns() - start


def _best_totals_ns(small: list[str], large: list[str], rounds: int) -> tuple[int, int]:
    """Best whole-stream times of both sizes, interleaved so that load on a shared machine hits both alike."""
    small_best = large_best = 0
    for _ in range(rounds):
        small_ns = _whole_stream_ns(small)
        large_ns = _whole_stream_ns(large)
        small_best = small_ns if not small_best else min(small_best, small_ns)
        large_best = large_ns if not large_best else min(large_best, large_ns)
    return small_best, large_best


def _json_loads_ns(text: str, repeats: int) -> int:
    best = 0
    for _ in range(repeats):
        start = time.perf_counter_ns()
        json.loads(text)
        elapsed = time.perf_counter_ns() - start
        best = elapsed if not best else min(best, elapsed)
    return best


def bench_parser(repeats: int = 30) -> dict[str, Any]:
    """Run the benchmark; return the figures (times in µs unless the key says ms)."""
    small = build_document(10_000)
    large = build_document(100_000)
    small_chunks = _chunks(small)
    large_chunks = _chunks(large)
    samples = sorted(_per_chunk_ns(small_chunks, repeats))
    small_total, large_total = _best_totals_ns(small_chunks, large_chunks, max(5, repeats // 2))
    loads = _json_loads_ns(small, repeats)
    return {
        "document_chars": len(small),
        "chunk_chars": CHUNK_CHARS,
        "chunks": len(small_chunks),
        "median_us_per_chunk": statistics.median(samples) / 1000,
        "p99_us_per_chunk": samples[int(len(samples) * 0.99)] / 1000,
        "total_ms_10kb": small_total / 1e6,
        "total_ms_100kb": large_total / 1e6,
        "large_document_chars": len(large),
        "linearity_ratio_100kb_vs_10kb": large_total / small_total,
        "size_ratio_100kb_vs_10kb": len(large) / len(small),
        "json_loads_us_10kb": loads / 1000,
        "json_loads_us_per_chunk_equivalent": loads / 1000 / len(small_chunks),
    }


if __name__ == "__main__":
    for name, value in bench_parser().items():
        print(f"{name:38} {value:.3f}" if isinstance(value, float) else f"{name:38} {value}")
