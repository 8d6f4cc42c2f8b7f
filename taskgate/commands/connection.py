"""Where a command's answers come from: the server `--url` (or TASKGATE_URL) names, else the data directory
(read through `local.py`; a call runs the server's app in process, `in_process.py`).

The options every command shares are declared here once. The key a server is sent is
TASKGATE_API_KEY, read (like every variable) by taskgate/config.py; it is deliberately not an option,
since a key on a command line is kept in shell histories and shown to every user by `ps`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer

from taskgate.commands.console import CommandError, Format
from taskgate.commands.in_process import in_process
from taskgate.commands.local import LocalData
from taskgate.commands.reading import Reader
from taskgate.commands.remote import RemoteServer
from taskgate.config import ConfigError, Settings

CONFIG_ERROR = 2  # as `taskgate serve` exits on a setting it cannot use
_PROJECT_IS_LOCAL = "--project reads a data directory; a server answers for the project of TASKGATE_API_KEY"

Url = Annotated[str | None, typer.Option(
    "--url", help="A running Taskgate server, e.g. http://127.0.0.1:8000 (TASKGATE_URL); its key is "
                  "TASKGATE_API_KEY. Without one, the data directory is used in process.", show_default=False)]
DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="With no server: the data directory to use (TASKGATE_DATA_DIR, default .taskgate).")]
Project = Annotated[str | None, typer.Option(
    "--project", help="With no server: the project to use, when the store holds several and "
                      "TASKGATE_API_KEY does not say.")]
OutputFormat = Annotated[Format, typer.Option(
    "--format", help="pretty (tables, colours) or json; auto is pretty on a terminal, json in a pipe.")]


def settings_for(url: str | None, data_dir: Path | None) -> Settings:
    """The environment's settings under the command line's; a bad one exits with status 2."""
    try:
        if url is not None:  # checked alone first, so the message shows --url's value, not the variable's
            try:
                Settings.from_env({}, client_url=url)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("TASKGATE_URL", "--url")) from None
        return Settings.from_env(data_dir=data_dir, client_url=url)
    except ConfigError as exc:
        typer.echo(f"taskgate: {exc}", err=True)
        raise typer.Exit(CONFIG_ERROR) from None


@contextlib.asynccontextmanager
async def reader(settings: Settings, project: str | None) -> AsyncIterator[Reader]:
    """The server when one is named, else the data directory's store, closed on the way out."""
    source: Reader
    if settings.client_url:
        if project is not None:
            raise CommandError(_PROJECT_IS_LOCAL)
        source = RemoteServer(settings.client_url, settings.client_api_key)
    else:
        source = await LocalData.open(settings, project)
    try:
        yield source
    finally:
        await source.close()


@contextlib.asynccontextmanager
async def caller(settings: Settings, project: str | None) -> AsyncIterator[RemoteServer]:
    """The named server, else the server's app run in this process on the data directory
    (`in_process.py`): either way, the same requests and the same answers."""
    if not settings.client_url:
        async with in_process(settings, project) as local:
            yield local
        return
    if project is not None:
        raise CommandError(_PROJECT_IS_LOCAL)
    remote = RemoteServer(settings.client_url, settings.client_api_key)
    try:
        yield remote
    finally:
        await remote.close()
