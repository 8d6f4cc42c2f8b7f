"""`taskgate usage`: cost, calls and tokens over a recent span of time, per model, function or tag value.

The sums are the server's (`GET /v2/analytics/usage`, or the same report read from the data
directory). The bucket size follows the span (minutes up to 6 hours, hours up to 14 days, days up
to 400 days, then months) unless `--granularity` says; each group's sparkline has one block per
bucket, buckets without usage included, merged when there are more than fit a line.
"""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from taskgate.commands.arguments import since as parse_since
from taskgate.commands.connection import DataDir, OutputFormat, Project, Url, reader, settings_for
from taskgate.commands.console import CommandError, Format, pretty, print_json, run, stdout_console
from taskgate.commands.reading import UsageParams
from taskgate.commands.tables import count, instant, money, sparkline
from taskgate.config import Settings

SPARK_WIDTH = 24
NO_VALUE = "(none)"
FIELDS = ("calls", "input_tokens", "output_tokens")
_STEPS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_AUTO = ((timedelta(hours=6), "minute"), (timedelta(days=14), "hour"), (timedelta(days=400), "day"))


class Granularity(enum.StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


class Measure(enum.StrEnum):
    CALLS = "calls"
    COST = "cost"
    TOKENS = "tokens"


def usage(
    by: Annotated[str | None, typer.Option(
        "--by", help="Split by model, function or tag:KEY (a tag's values). Default: one total.")] = None,
    since: Annotated[str, typer.Option(help="How far back: 30m, 1h, 7d, 2w.")] = "7d",
    granularity: Annotated[Granularity | None, typer.Option(help="Bucket size; default: by --since.")] = None,
    spark: Annotated[Measure, typer.Option(help="What the sparkline draws.")] = Measure.CALLS,
    url: Url = None,
    data_dir: DataDir = None,
    project: Project = None,
    output_format: OutputFormat = Format.AUTO,
) -> None:
    """Cost, calls and tokens per group, with a sparkline of each over time."""
    settings = settings_for(url, data_dir)
    run(_usage(settings, project, by, since, granularity, spark, output_format))


def group_key(by: str | None) -> str | None:
    """`--by`'s value as the report's group key: `model`, `function`, or a tag's key."""
    if by is None:
        return None
    if by in ("model", "function"):
        return by
    kind, sep, key = by.partition(":")
    if kind != "tag" or not sep:
        raise CommandError(f"--by must be model, function or tag:KEY, got {by[:100]!r}")
    if not key:
        raise CommandError("--by tag: needs a tag key after the colon, such as tag:customer")
    if key in ("model", "function"):
        raise CommandError(f"--by tag:{key}: a tag key cannot be '{key}', which the report reads as the span's own")
    return key


async def _usage(settings: Settings, project: str | None, by: str | None, since: str,
                 granularity: Granularity | None, spark: Measure, output_format: Format) -> None:
    key = group_key(by)
    end = datetime.now(UTC)
    start = end - parse_since(since)
    size = granularity.value if granularity is not None else _auto_granularity(end - start)
    query = UsageParams(start, end, size, (key,) if key else (), FIELDS)
    async with reader(settings, project) as source:
        rows = await source.usage(query)
    if not pretty(output_format):
        print_json(rows)
        return
    buckets = bucket_starts(start, end, size)
    table = Table(title=f"usage since {start:%Y-%m-%d %H:%M} UTC, per {size}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(by or "all")
    for column in ("calls", "input tokens", "output tokens", "cost"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column(f"{spark.value} over time", no_wrap=True, min_width=SPARK_WIDTH)
    for name, items in _groups(rows, key).items():
        table.add_row(Text(name), count(sum(_int(item, "calls") for item in items)),
                      count(sum(_int(item, "input_tokens") for item in items)),
                      count(sum(_int(item, "output_tokens") for item in items)),
                      money(sum(_cost(item) for item in items)),
                      Text(sparkline(_series(items, buckets, spark)), style="cyan"))
    if not rows:
        table.add_row(Text("no usage"), "0", "0", "0", money(0), "")
    stdout_console(output_format).print(table)


def _auto_granularity(span: timedelta) -> str:
    return next((size for longest, size in _AUTO if span <= longest), "month")


def bucket_starts(start: datetime, end: datetime, size: str) -> list[datetime]:
    """The start of every bucket [start, end) touches, in UTC (the report's buckets are UTC)."""
    moment = _floor(start.astimezone(UTC), size)
    starts = []
    while moment < end:
        starts.append(moment)
        moment = moment + _STEPS[size] if size in _STEPS else _next_period(moment, size)
    return starts


def _floor(moment: datetime, size: str) -> datetime:
    moment = moment.replace(second=0, microsecond=0)
    if size == "minute":
        return moment
    moment = moment.replace(minute=0)
    if size == "hour":
        return moment
    moment = moment.replace(hour=0)
    if size == "day":
        return moment
    moment = moment.replace(day=1)
    return moment if size == "month" else moment.replace(month=1)


def _next_period(moment: datetime, size: str) -> datetime:
    if size == "year":
        return moment.replace(year=moment.year + 1)
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1)
    return moment.replace(month=moment.month + 1)


def _groups(rows: list[dict[str, Any]], key: str | None) -> dict[str, list[dict[str, Any]]]:
    """Rows by their group's value, the costliest group first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        value = row.get(key) if key else "all"
        groups.setdefault(NO_VALUE if value is None else str(value), []).append(row)
    return dict(sorted(groups.items(), key=lambda item: (-sum(_cost(row) for row in item[1]), item[0])))


def _series(items: list[dict[str, Any]], buckets: list[datetime], measure: Measure) -> list[float]:
    """The measure per bucket, merged into at most SPARK_WIDTH columns."""
    per_bucket: dict[datetime, float] = {}
    for item in items:
        moment = instant(item.get("time_bucket"))
        if moment is not None:
            per_bucket[moment] = per_bucket.get(moment, 0.0) + _measure(item, measure)
    values = [per_bucket.get(bucket, 0.0) for bucket in buckets]
    width = math.ceil(len(values) / SPARK_WIDTH) if values else 1
    return [sum(values[at:at + width]) for at in range(0, len(values), width)]


def _measure(item: dict[str, Any], measure: Measure) -> float:
    if measure is Measure.COST:
        return _cost(item)
    if measure is Measure.TOKENS:
        return float(_int(item, "total_tokens"))
    return float(_int(item, "calls"))


def _int(item: dict[str, Any], name: str) -> int:
    value = item.get(name)
    return value if isinstance(value, int) else 0


def _cost(item: dict[str, Any]) -> float:
    """v2 writes cost as text (1.7.2 types it so)."""
    try:
        return float(item.get("cost") or 0)
    except (TypeError, ValueError):
        return 0.0
