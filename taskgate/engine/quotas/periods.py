"""Budget periods: the UTC day or month a call falls in, named as the usage totals store them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def period_key(period: str, now: datetime) -> str:
    """"day:2026-12-03" or "month:2026-12", in UTC."""
    moment = now.astimezone(UTC)
    return f"day:{moment:%Y-%m-%d}" if period == "day" else f"month:{moment:%Y-%m}"


def period_bounds(key: str) -> tuple[datetime, datetime]:
    """When the period of `key` starts and ends (UTC)."""
    kind, _, stamp = key.partition(":")
    if kind == "day":
        start = datetime.strptime(stamp, "%Y-%m-%d").replace(tzinfo=UTC)
        return start, start + timedelta(days=1)
    start = datetime.strptime(stamp, "%Y-%m").replace(tzinfo=UTC)
    following = (start.replace(year=start.year + 1, month=1) if start.month == 12
                 else start.replace(month=start.month + 1))
    return start, following


def seconds_left(key: str, now: datetime) -> float:
    return max(0.0, (period_bounds(key)[1] - now.astimezone(UTC)).total_seconds())
