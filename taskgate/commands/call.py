"""`taskgate call NAME`: run a task and show its answer, streamed live with `--stream`.

On the server `--url` (or TASKGATE_URL) names; with none, in this process on the data directory,
through the server's own app (`in_process.py`), so the answer, the stream and the recorded span are
the same either way, and the span can then be read with `taskgate trace`.

At a terminal, a spinner runs until the answer is in (with `--stream`, the answer grows beneath it
as the server's `json_path` deltas arrive), then the answer is printed as indented JSON and a line on
stderr gives its span, model, tokens, cost and time. In a pipe, stdout is JSON only: the answer as one
document, or with `--stream` one line per chunk as the server sends it (`{"span_id"}`, then
`{"json_path", "delta", "chunk_type"}` or text deltas), so a script can follow the stream. A refusal,
before or during the stream, prints the server's message and exits with status 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.json import JSON
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from taskgate.commands.arguments import json_object, json_value
from taskgate.commands.connection import DataDir, OutputFormat, Project, Url, caller, settings_for
from taskgate.commands.console import CommandError, Format, pretty, print_json, run, stderr_console, stdout_console
from taskgate.commands.json_assembly import JsonAssembly, PathError
from taskgate.commands.remote import RemoteServer
from taskgate.commands.tables import money
from taskgate.config import Settings

JsonOption = "inline JSON, @file for a file's JSON, or @- for stdin"
REDRAW_S = 0.08  # the live view redraws at most this often


def call(
    name: Annotated[str, typer.Argument(help="The function's name (made on first call).")],
    instructions: Annotated[str | None, typer.Option(help="What the model is to do.")] = None,
    input_value: Annotated[str | None, typer.Option(
        "--input", help=f"The input: {JsonOption}; text that is not JSON is sent as a string.")] = None,
    output_schema: Annotated[str | None, typer.Option(help=f"JSON Schema of the answer: {JsonOption}.")] = None,
    input_schema: Annotated[str | None, typer.Option(help=f"JSON Schema of the input: {JsonOption}.")] = None,
    model: Annotated[list[str] | None, typer.Option(
        help="provider/model; repeat it for a fallback chain. Default: the server's (with no server, "
             "TASKGATE_DEFAULT_MODEL, else the first provider with a key, else the bundled local model).")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Show the answer as it is generated.")] = False,
    url: Url = None,
    data_dir: DataDir = None,
    project: Project = None,
    output_format: OutputFormat = Format.AUTO,
) -> None:
    """Call a function on a Taskgate server, or with none on the data directory, and print its answer (JSON)."""
    settings = settings_for(url, data_dir)
    body = partial(_body, name, instructions, input_value, output_schema, input_schema, model)
    run(_call(settings, project, body, stream, output_format))


def _body(name: str, instructions: str | None, input_value: str | None, output_schema: str | None,
          input_schema: str | None, models: list[str] | None) -> dict[str, Any]:
    """The v2 call body; every file is read (and checked to be JSON) before anything is sent."""
    body: dict[str, Any] = {"name": name}
    if instructions is not None:
        body["instructions"] = instructions
    if input_value is not None:
        body["input"] = json_value(input_value, "--input", text_allowed=True)
    if output_schema is not None:
        body["output_schema"] = json_object(output_schema, "--output-schema")
    if input_schema is not None:
        body["input_schema"] = json_object(input_schema, "--input-schema")
    if models:
        body["model"] = models[0] if len(models) == 1 else models
    return body


async def _call(settings: Settings, project: str | None, make_body: Callable[[], dict[str, Any]], stream: bool,
                output_format: Format) -> None:
    body = make_body()
    async with caller(settings, project) as remote:
        started = time.monotonic()
        if not pretty(output_format):
            if stream:
                async for chunk in remote.call_stream(body):
                    print_json(chunk)
                    _raise_if_error(chunk)
            else:
                print_json(_answer_of(await remote.call(body)))
            return
        console = stdout_console(output_format)
        if stream:
            answer, span = await _stream_live(remote, body, console)
        else:
            with console.status(Text(f"calling {body['name']}…")):
                reply = await remote.call(body)
            answer, span = _answer_of(reply), _reply_facts(reply)
        console.print(Text(answer) if isinstance(answer, str) else JSON.from_data(answer, indent=2))
        _footer(span, time.monotonic() - started)


async def _stream_live(remote: RemoteServer, body: dict[str, Any], console: Console) -> tuple[Any, dict[str, Any]]:
    """Deltas shown as they come; then the answer as the server recorded it (its span's output,
    which holds what the stream cannot: empty objects and arrays)."""
    assembly: JsonAssembly | None = JsonAssembly()
    text: list[str] = []
    span_id: str | None = None
    spinner = Spinner("dots", text=Text(f"streaming {body['name']}…"))
    shown_at = 0.0
    with Live(spinner, console=console, transient=True, refresh_per_second=12) as live:
        async for chunk in remote.call_stream(body):
            _raise_if_error(chunk)
            span_id = chunk.get("span_id") or span_id
            if chunk.get("chunk_type") == "json" and assembly is not None:
                try:
                    assembly.add(str(chunk.get("json_path")), chunk.get("delta"))
                except PathError:
                    assembly = None  # shown whole at the end instead
            elif chunk.get("chunk_type") == "text" and isinstance(chunk.get("delta"), str):
                text.append(chunk["delta"])
            if time.monotonic() - shown_at >= REDRAW_S:  # drawing the whole answer per delta would be quadratic
                live.update(_so_far(spinner, assembly, text))
                shown_at = time.monotonic()
    if span_id is None:
        raise CommandError(f"{remote.where} ended the stream without a span id")
    span = await remote.span(span_id)
    return span.get("output"), {"span_id": span_id, "model": span.get("model"), "cost": span.get("cost"),
                                "tokens": _tokens(span.get("usage"))}


def _so_far(spinner: Spinner, assembly: JsonAssembly | None, text: list[str]) -> Group:
    if assembly is not None and assembly.value is not None:
        return Group(spinner, JSON.from_data(assembly.value, indent=2))
    return Group(spinner, Text("".join(text)))


def _raise_if_error(chunk: dict[str, Any]) -> None:
    if chunk.get("chunk_type") == "error":
        raise CommandError(f"{chunk.get('error_type') or 'error'}: {chunk.get('error_message') or 'the call failed'}")


def _answer_of(reply: dict[str, Any]) -> Any:
    """The structured answer, or the text one."""
    return reply["json_payload"] if reply.get("json_payload") is not None else reply.get("message")


def _reply_facts(reply: dict[str, Any]) -> dict[str, Any]:
    cost = reply.get("cost")
    return {"span_id": reply.get("span_id"), "model": None,
            "cost": cost.get("total") if isinstance(cost, dict) else None, "tokens": _tokens(reply.get("usage"))}


def _tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    if isinstance(usage.get("total_tokens"), int):
        return int(usage["total_tokens"])
    parts = [usage.get("input_tokens"), usage.get("output_tokens")]
    return sum(part for part in parts if isinstance(part, int)) if any(isinstance(p, int) for p in parts) else None


def _footer(facts: dict[str, Any], seconds: float) -> None:
    shown = [f"span {facts['span_id']}"]
    if facts.get("model"):
        shown.append(str(facts["model"]))
    if facts.get("tokens") is not None:
        shown.append(f"{facts['tokens']} tokens")
    shown.append(money(facts.get("cost")))
    shown.append(f"{seconds:.2f} s")
    stderr_console().print(Text(" · ".join(shown), style="dim"), soft_wrap=True)
