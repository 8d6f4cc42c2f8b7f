"""The `taskgate` command: `serve` runs the server; `keys` and `projects` manage keys and limits (cli_keys)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from sqlalchemy.engine import make_url

from taskgate import cli_keys
from taskgate.app import create_app
from taskgate.commands import register
from taskgate.config import ConfigError, Settings
from taskgate.server.access_log import configure_logging
from taskgate.server.uvicorn_options import server_options
from taskgate.server.worker_count import parse_workers

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Taskgate: the Opper Task API, self-hosted.")
app.add_typer(cli_keys.keys, name="keys")
app.add_typer(cli_keys.projects, name="projects")
register(app)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the SQLite store and models live (TASKGATE_DATA_DIR).")
]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    """The environment's settings under the command line's options; a bad one exits with status 2."""
    try:
        return Settings.from_env(data_dir=data_dir, **overrides)
    except ConfigError as exc:
        typer.echo(f"taskgate: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDir = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    workers: Annotated[str, typer.Option(
        "--workers", help="Serving processes sharing the port: a number, or 'auto' for one per core.")] = "1",
) -> None:
    """Run the HTTP server (v2, v3 and the OpenAI-compatible endpoints)."""
    try:
        count = parse_workers(workers)
    except ValueError as exc:
        typer.echo(f"taskgate: {exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(log_level.upper())
    settings = _settings(data_dir, host=host, port=port, workers=count)
    log = logging.getLogger("taskgate.serve")
    log.warning("taskgate serving on http://%s:%d; store %s; default model %s", host, port,
                make_url(settings.effective_database_url).render_as_string(hide_password=True),
                settings.default_model)
    log.warning("the web UI is at http://%s:%d/ui", f"[{host}]" if ":" in host else host, port)
    if not settings.api_keys:
        log.warning("TASKGATE_API_KEYS is empty: create a key with `taskgate keys create --project NAME`")
    if count > 1:
        from taskgate.server.supervisor import Supervisor

        raise typer.Exit(Supervisor(settings, count, log_level).run())
    # Span writes and local inference run in threads; a short switch interval stops them from
    # holding the GIL for the default 5 ms while a request waits on the event loop.
    sys.setswitchinterval(0.0005)
    uvicorn.run(create_app(settings), **server_options(settings))


def main() -> None:
    app()
