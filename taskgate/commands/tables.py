"""How the commands write numbers and times for a person: cost, latency, tokens, instants, sparklines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

SPARKS = "▁▂▃▄▅▆▇█"


def money(cost: Any) -> str:
    """USD with enough digits to see a fraction of a cent; `-` when unknown (no price)."""
    try:
        value = float(cost)
    except (TypeError, ValueError):
        return "$ -"
    if value == 0:
        return "$0"
    if abs(value) >= 0.01:
        return f"${value:,.4f}"
    return f"${value:.8f}".rstrip("0")


def latency(milliseconds: Any) -> str:
    if not isinstance(milliseconds, int | float):
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return f"{milliseconds / 1000:.2f} s"


def count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def instant(value: Any) -> datetime | None:
    """An ISO 8601 time from a body, in UTC; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def when(value: Any) -> str:
    moment = instant(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def sparkline(values: Sequence[float]) -> str:
    """One block per value, scaled to the largest; zero is the lowest block's absence (a space)."""
    top = max(values, default=0.0)
    if top <= 0:
        return " " * len(values)
    return "".join(" " if value <= 0 else SPARKS[min(len(SPARKS) - 1, int(value / top * (len(SPARKS) - 1) + 0.5))]
                   for value in values)
