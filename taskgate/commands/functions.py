"""`taskgate functions`: the project's functions with their current revision, and their calls and cost
over `--since` (the usage report grouped by function, which counts every recorded call)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from taskgate.commands.arguments import since as parse_since
from taskgate.commands.connection import DataDir, OutputFormat, Project, Url, reader, settings_for
from taskgate.commands.console import Format, pretty, print_json, run, stdout_console
from taskgate.commands.reading import Reader, UsageParams
from taskgate.commands.tables import count, money
from taskgate.config import Settings

PAGE = 100
MAX_FUNCTIONS = 100_000


def functions(
    since: Annotated[str, typer.Option(help="The calls and cost columns cover this long: 1h, 7d, 30d.")] = "30d",
    url: Url = None,
    data_dir: DataDir = None,
    project: Project = None,
    output_format: OutputFormat = Format.AUTO,
) -> None:
    """List the functions: name, revision, model, and calls and cost over --since."""
    settings = settings_for(url, data_dir)
    run(_functions(settings, project, since, output_format))


async def _functions(settings: Settings, project: str | None, since: str, output_format: Format) -> None:
    end = datetime.now(UTC)
    start = end - parse_since(since)
    async with reader(settings, project) as source:
        listed = await _all_functions(source)
        rows = await source.usage(UsageParams(start, end, "year", ("function",), ("calls",)))
    calls: dict[str, int] = {}
    costs: dict[str, float] = {}
    for row in rows:
        name = str(row.get("function"))
        calls[name] = calls.get(name, 0) + (row["calls"] if isinstance(row.get("calls"), int) else 0)
        costs[name] = costs.get(name, 0.0) + _float(row.get("cost"))
    items = [{**item, "calls": calls.get(str(item.get("name")), 0), "cost": costs.get(str(item.get("name")), 0.0)}
             for item in listed]
    if not pretty(output_format):
        print_json(items)
        return
    table = Table(title=f"{len(items)} function{'s' if len(items) != 1 else ''}; calls and cost over {since}",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name")
    table.add_column("revision", no_wrap=True)
    table.add_column("model")
    table.add_column("calls", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    for item in items:
        table.add_row(Text(str(item.get("name"))), Text(str(item.get("revision_id") or "-")),
                      Text(_model(item.get("model"))), count(item["calls"]), money(item["cost"]))
    stdout_console(output_format).print(table)


async def _all_functions(source: Reader) -> list[dict[str, Any]]:
    """Every function, page by page (the listing answers at most PAGE at once)."""
    found: list[dict[str, Any]] = []
    while len(found) < MAX_FUNCTIONS:
        page = await source.functions(PAGE, len(found))
        items = page.get("data") or []
        found.extend(items)
        if not items or len(found) >= int((page.get("meta") or {}).get("total_count") or 0):
            break
    return found


def _model(model: Any) -> str:
    if model is None:
        return "-"
    if isinstance(model, str):
        return model
    if isinstance(model, list):
        return ", ".join(_model(entry) for entry in model)
    if isinstance(model, dict):
        return str(model.get("name") or model)
    return str(model)


def _float(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0
