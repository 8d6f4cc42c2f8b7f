"""Values given on the command line: JSON inline or as `@file`, and durations such as `1h` or `7d`.

`@file` reads exactly the file the user named and nothing else: the path is opened as given (no `~`,
glob or variable is expanded here: the shell already did what the user asked of it), only a regular
file (or `@-`, stdin) is read, at most `MAX_FILE_BYTES` of it, and its text must be JSON. Nothing in
the JSON is followed: a schema's `$ref` to a file or a URL is sent as it is, and the server refuses it.
An error names the file and the problem, never its content.
"""

from __future__ import annotations

import re
import stat
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from taskgate.commands.console import CommandError
from taskgate.json_text import MAX_JSON_DEPTH

T = TypeVar("T")

MAX_FILE_BYTES = 10 * 1024 * 1024  # the server's default body limit: a larger file could not be sent anyway
STDIN = "-"
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_SINCE = timedelta(days=3650)


def json_value(raw: str, option: str, *, text_allowed: bool = False) -> Any:
    """The value of a JSON option: `@path` is the JSON in that file, `@-` the JSON on stdin; inline
    text is parsed as JSON, and, where `text_allowed` (an input may be plain text), kept as a string
    when it is not JSON. `@@x` is the literal text `@x`."""
    if raw.startswith("@@"):
        return _sendable(_inline(raw[1:], option, text_allowed), option)
    if raw.startswith("@"):
        return _sendable(_parsed(read_file(raw[1:], option), f"{option} {raw}"), f"{option} {raw}")
    return _sendable(_inline(raw, option, text_allowed), option)


def _sendable(value: T, what: str) -> T:
    """orjson reads JSON nested up to 1024 levels but writes only 255: deeper JSON could be read
    here and then not sent (a server refuses anything past taskgate.json_text.MAX_JSON_DEPTH anyway)."""
    try:
        orjson.dumps(value)
    except TypeError:
        raise CommandError(f"{what}: the JSON is nested too deeply to send (a server reads at most "
                           f"{MAX_JSON_DEPTH} levels)") from None
    return value


def json_object(raw: str, option: str) -> dict[str, Any]:
    """A JSON Schema option: inline or `@file`, and an object."""
    value = json_value(raw, option)
    if not isinstance(value, dict):
        raise CommandError(f"{option} must be a JSON object (a JSON Schema), got {type(value).__name__}")
    return value


def _inline(raw: str, option: str, text_allowed: bool) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if text_allowed:
            return raw
        raise CommandError(f"{option} is not JSON ({exc}); give JSON inline or @file") from None


def read_file(name: str, option: str) -> bytes:
    """The bytes of the named regular file (or stdin for `-`), refused past MAX_FILE_BYTES."""
    if not name:
        raise CommandError(f"{option} @: no file named after '@'")
    if name == STDIN:
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    else:
        data = _regular_file(Path(name), f"{option} @{name}")
    if len(data) > MAX_FILE_BYTES:
        raise CommandError(f"{option} @{name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return data


def _regular_file(path: Path, what: str) -> bytes:
    """Checked before opening: opening a FIFO would wait for a writer, a device could be endless."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise CommandError(f"{what}: not a regular file")
        with path.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CommandError(f"{what}: no such file") from None
    except PermissionError:
        raise CommandError(f"{what}: permission denied") from None
    except OSError as exc:
        raise CommandError(f"{what}: cannot be read ({exc.strerror or exc})") from None


def _parsed(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"{what}: the file is not JSON ({exc})") from None


def since(raw: str, option: str = "--since") -> timedelta:
    """`90s`, `15m`, `1h`, `7d` or `2w`: a positive span of at most ten years."""
    match = _DURATION.fullmatch(raw.strip())
    if match is None:
        raise CommandError(f"{option} must be a whole number and a unit (s, m, h, d or w), such as 1h or 7d; "
                           f"got {raw[:40]!r}")
    amount, unit = int(match[1]), match[2]
    if amount == 0:
        raise CommandError(f"{option} must be longer than 0, got {raw!r}")
    seconds = amount * _UNIT_SECONDS[unit]
    if seconds > MAX_SINCE.total_seconds():
        raise CommandError(f"{option} may reach back at most {MAX_SINCE.days} days, got {raw!r}")
    return timedelta(seconds=seconds)
