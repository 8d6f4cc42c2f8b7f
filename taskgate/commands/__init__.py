"""The everyday commands beside `serve`: `call`, `traces`, `trace`, `usage` and `functions`.

Each talks to a running server (`--url` or TASKGATE_URL, with TASKGATE_API_KEY) through its public
HTTP API, or, with no server named, uses the data directory itself (`connection.py`): the reads
through the engine's services (`local.py`), a call through the server's app run in process
(`in_process.py`).
"""

from __future__ import annotations

import typer

from taskgate.commands.call import call
from taskgate.commands.functions import functions
from taskgate.commands.traces import trace, traces
from taskgate.commands.usage import usage


def register(app: typer.Typer) -> None:
    """Add the commands to the `taskgate` command."""
    for command in (call, traces, trace, usage, functions):
        app.command()(command)
