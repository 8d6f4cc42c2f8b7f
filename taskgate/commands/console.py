"""How every CLI command ends: its output on stdout, a failure as one line on stderr and a non-zero status.

A person at a terminal gets rich output (tables, trees, a spinner); a pipe gets JSON it can parse.
`--format` overrides the guess, which is all the guess is: stdout being a terminal or not.
A failure the user can act on (a bad flag, a server's refusal, no server) is a `CommandError`; it is
printed as `taskgate: <message>` and never as a traceback.
"""

from __future__ import annotations

import asyncio
import enum
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson
import typer
from rich.console import Console

T = TypeVar("T")

FAILED = 1  # the command could not do what was asked (the server refused, nothing found, bad input)
INTERRUPTED = 130  # Ctrl-C, as shells report it
PIPED_WIDTH = 120


class Format(enum.StrEnum):
    AUTO = "auto"
    PRETTY = "pretty"
    JSON = "json"


class CommandError(Exception):
    """What went wrong, in words for the person who typed the command."""


class NotFound(CommandError):
    """The server (or the store) has no such thing: a caller may look for it another way."""


def pretty(output_format: Format) -> bool:
    """Rich output, or JSON: `auto` is rich exactly when stdout is a terminal."""
    if output_format is Format.AUTO:
        return sys.stdout.isatty()
    return output_format is Format.PRETTY


def stdout_console(output_format: Format) -> Console:
    """A console on the current stdout (made per command: a test runner swaps stdout). Pretty output
    forced into a pipe has no terminal width to fit, so it gets a wide one (a pager scrolls)."""
    forced = output_format is Format.PRETTY and not sys.stdout.isatty()
    return Console(file=sys.stdout, force_terminal=True if output_format is Format.PRETTY else None,
                   width=PIPED_WIDTH if forced else None, highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def print_json(value: Any) -> None:
    """One JSON document on one line: what a pipe reads."""
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a CommandError becomes its message and status 1, Ctrl-C status 130."""
    try:
        return asyncio.run(work)
    except CommandError as exc:
        typer.echo(f"taskgate: {exc}", err=True)
        raise typer.Exit(FAILED) from None
    except KeyboardInterrupt:
        typer.echo("taskgate: interrupted", err=True)
        raise typer.Exit(INTERRUPTED) from None
