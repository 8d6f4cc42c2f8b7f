"""`taskgate traces` (the newest traces) and `taskgate trace ID` (one trace as a tree of its spans).

`--function NAME` keeps the traces whose root span is a call of NAME (a trace is named after its
root; the listing is asked for names containing NAME, and exact matches are kept). `--since 1h`
pages back through the newest-first listing and stops at the first trace older than that.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from taskgate.commands.arguments import since as parse_since
from taskgate.commands.connection import DataDir, OutputFormat, Project, Url, reader, settings_for
from taskgate.commands.console import CommandError, Format, NotFound, pretty, print_json, run, stdout_console
from taskgate.commands.reading import Reader
from taskgate.commands.tables import count, instant, latency, money, when
from taskgate.config import Settings

PAGE = 100  # the most the listing answers at once
MAX_TRACES = 10_000


def traces(
    function: Annotated[str | None, typer.Option("--function", help="Only traces of calls of this function.")] = None,
    since: Annotated[str | None, typer.Option(help="Only traces started within this long: 30m, 1h, 7d, 2w.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_TRACES, help="At most this many traces.")] = 20,
    url: Url = None,
    data_dir: DataDir = None,
    project: Project = None,
    output_format: OutputFormat = Format.AUTO,
) -> None:
    """List the newest traces: name, spans, tokens, latency and status."""
    settings = settings_for(url, data_dir)
    run(_traces(settings, project, function, since, limit, output_format))


def trace(
    trace_id: Annotated[str, typer.Argument(help="The trace's id, or the id of a span in it (such as the span "
                                                 "`taskgate call` prints).")],
    url: Url = None,
    data_dir: DataDir = None,
    project: Project = None,
    output_format: OutputFormat = Format.AUTO,
) -> None:
    """Show one trace as a tree of its spans, with each span's cost, tokens and latency."""
    settings = settings_for(url, data_dir)
    run(_trace(settings, project, trace_id, output_format))


async def _traces(settings: Settings, project: str | None, function: str | None, since: str | None, limit: int,
                  output_format: Format) -> None:
    cutoff = datetime.now(UTC) - parse_since(since) if since is not None else None
    if function is not None and not function.strip():
        raise CommandError("--function must not be empty")
    async with reader(settings, project) as source:
        found = await _newest(source, function, cutoff, limit)
    if not pretty(output_format):
        print_json(found)
        return
    table = Table(title=f"{len(found)} trace{'s' if len(found) != 1 else ''}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("started UTC", no_wrap=True)
    table.add_column("trace", no_wrap=True, min_width=36)  # whole, to be copied into `taskgate trace`
    table.add_column("name")
    for column in ("spans", "tokens", "latency"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status")
    for item in found:
        table.add_row(when(item.get("start_time"))[5:], Text(str(item.get("id"))), Text(str(item.get("name") or "-")),
                      count(item.get("span_count")), count(item.get("total_tokens")), latency(item.get("duration_ms")),
                      _status(item.get("status")))
    stdout_console(output_format).print(table)


async def _newest(source: Reader, function: str | None, cutoff: datetime | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` traces, newest first, paging until enough are found or older ones begin."""
    found: list[dict[str, Any]] = []
    offset = 0
    while len(found) < limit:
        page = await source.traces(function, PAGE, offset)
        items = page.get("data") or []
        for item in items:
            started = instant(item.get("start_time"))
            if cutoff is not None and started is not None and started < cutoff:
                return found
            if function is None or item.get("name") == function:
                found.append(item)
                if len(found) == limit:
                    return found
        offset += len(items)
        if not items or offset >= int((page.get("meta") or {}).get("total_count") or 0):
            return found
    return found


async def _trace(settings: Settings, project: str | None, trace_id: str, output_format: Format) -> None:
    if not trace_id.strip() or "/" in trace_id:  # as the server checks it: one segment of a path
        raise CommandError("a trace id must be non-empty and must not contain '/'")
    async with reader(settings, project) as source:
        try:
            body = await source.trace(trace_id)
        except NotFound:  # perhaps a span's id, such as the one `taskgate call` prints
            owner = await source.trace_of_span(trace_id)
            if owner is None:
                raise
            body = await source.trace(owner)
    if not pretty(output_format):
        print_json(body)
        return
    spans = [span for span in body.get("spans") or [] if isinstance(span, dict)]
    costs = [span.get("cost") for span in spans if isinstance(span.get("cost"), int | float)]
    head = Text.assemble((str(body.get("name") or trace_id), "bold"), f"  trace {body.get('id')}  ",
                         f"{len(spans)} span{'s' if len(spans) != 1 else ''} · {latency(body.get('duration_ms'))}"
                         f" · {money(sum(costs)) if costs else money(None)} · ", _status(body.get("status")))
    tree = Tree(head)
    _grow(tree, spans)
    stdout_console(output_format).print(tree)


def _grow(tree: Tree, spans: list[dict[str, Any]]) -> None:
    """Each span under its parent, in start order; a span whose parent is not in the trace is a root."""
    ids = {span.get("id") for span in spans}
    children: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for span in sorted(spans, key=lambda span: str(span.get("start_time") or "")):
        parent = span.get("parent_id")
        children[parent if parent in ids else None].append(span)

    def add(branch: Tree, parent: Any, depth: int) -> None:
        for span in children.get(parent, []):
            node = branch.add(_span_line(span))
            if depth < 200:  # a tree deeper than a terminal is wide is unreadable anyway
                add(node, span.get("id"), depth + 1)

    add(tree, None, 0)


def _span_line(span: dict[str, Any]) -> Text:
    usage: dict[str, Any] = span["usage"] if isinstance(span.get("usage"), dict) else {}
    tokens = usage.get("total_tokens") if isinstance(usage.get("total_tokens"), int) else None
    if tokens is None and isinstance(usage.get("input_tokens"), int):
        tokens = int(usage["input_tokens"]) + int(usage.get("output_tokens") or 0)
    parts: list[Any] = [(str(span.get("name") or "-"), "bold"), f" [{span.get('type') or 'span'}]"]
    if span.get("model"):
        parts.append((f" {span['model']}", "cyan"))
    parts.append(f"  {latency(span.get('duration_ms'))}")
    parts.append(f"  {money(span.get('cost'))}")
    if tokens is not None:
        parts.append(f"  {tokens:,} tokens")
    parts.append(f"  {span.get('id')}")
    if span.get("error"):
        parts.append((f"  error: {str(span['error'])[:200]}", "red"))
    return Text.assemble(*parts)


def _status(status: Any) -> Text:
    return Text(str(status or "-"), style="red" if status == "error" else "green")
