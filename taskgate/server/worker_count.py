"""`--workers`: how many serving processes `taskgate serve` runs."""

from __future__ import annotations

import os

AUTO = "auto"
WORKERS_PER_CORE = 4  # beyond this, workers only add memory (each holds its own app) and contention


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    return WORKERS_PER_CORE * cores()


def parse_workers(raw: str) -> int:
    """`auto` (one per core) or a whole number from 1 to `max_workers()`; anything else is a ValueError
    whose message says what is accepted."""
    text = raw.strip().lower()
    if text == AUTO:
        return cores()
    limit = max_workers()
    accepted = f"a whole number from 1 to {limit} ({WORKERS_PER_CORE} per core here) or '{AUTO}'"
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"--workers must be {accepted}, got {raw[:40]!r}")
    count = int(text[:12]) if len(text) <= 12 else limit + 1
    if not 1 <= count <= limit:
        raise ValueError(f"--workers must be {accepted}, got {raw[:40]!r}")
    return count
