"""The `taskgate` command: `serve` runs the server; `keys` and `projects` manage keys and limits (cli_keys)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from sqlalchemy.engine import make_url

from taskgate import cli_keys
from taskgate.app import create_app
from taskgate.commands import register
from taskgate.config import ConfigError, Settings
from taskgate.server.access_log import configure_logging
from taskgate.server.protocol import ReadLimits, protocol_with

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
) -> None:
    """Run the HTTP server (v2, v3 and the OpenAI-compatible endpoints)."""
    configure_logging(log_level.upper())
    # Span writes and local inference run in threads; a short switch interval stops them from
    # holding the GIL for the default 5 ms while a request waits on the event loop.
    sys.setswitchinterval(0.0005)
    settings = _settings(data_dir, host=host, port=port)
    log = logging.getLogger("taskgate.serve")
    log.warning("taskgate serving on http://%s:%d; store %s; default model %s", host, port,
                make_url(settings.effective_database_url).render_as_string(hide_password=True),
                settings.default_model)
    log.warning("the web UI is at http://%s:%d/ui", f"[{host}]" if ":" in host else host, port)
    if not settings.api_keys:
        log.warning("TASKGATE_API_KEYS is empty: create a key with `taskgate keys create --project NAME`")
    uvicorn.run(create_app(settings), **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """How `serve` runs uvicorn (tests that run the app in process take the same options)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        # httptools, a JSON answer's head and body in one write, slow or huge requests refused
        "http": protocol_with(ReadLimits(settings.max_header_bytes, settings.header_timeout_s,
                                         settings.body_idle_timeout_s, settings.body_timeout_s)),
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "log_level": "warning",
        # After SIGTERM, in-flight requests get this long; then they are cancelled (their spans are
        # recorded as cancelled and written before exit). A departed client's call is already gone.
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
    }


def main() -> None:
    app()
