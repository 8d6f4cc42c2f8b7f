"""The checks every dialect's parser shares: an optional, typed request field, and a name or id.

The dialects word their answers differently (v2 says "or null" and answers 422; v3, spans and
the compat endpoint answer 400), so each call passes its wording and error class, but each check
itself lives here once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from taskgate.errors import BadRequestError, NotFoundError, TaskgateError


def optional(
    body: Mapping[str, Any],
    key: str,
    kind: type,
    label: str,
    *,
    name: str | None = None,
    error: type[TaskgateError] = BadRequestError,
) -> Any:
    """`body[key]`, or None when it is absent or null; a value of another type than `kind` raises
    `error("<name> must be <label>")`, where `name` defaults to the key in quotes."""
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        subject = name if name is not None else f"'{key}'"
        raise error(f"{subject} must be {label}")
    return value


def identifier(value: str, what: str, max_chars: int, *, error: type[TaskgateError] = BadRequestError) -> str:
    """`value` as a name or id a client gives (a function name, a span or trace id, in a body, a
    path or a header): it becomes a storage key, a log field and part of URLs, so it must be 1 to
    `max_chars` printable characters, not all of them spaces. Printable (`str.isprintable`) leaves
    out the controls (NUL, CR/LF, ESC, DEL, the C1 range), format characters and line separators,
    which would be stored, logged or looked up as something else. U+FFFD is refused as well: it is
    what uvicorn puts in a path for percent-encoded bytes that are not UTF-8 (`unquote` with
    errors="replace"), so a name holding it was mangled on the way, never meant."""
    if 0 < len(value) <= max_chars and value.isprintable() and not value.isspace() and "\ufffd" not in value:
        return value
    raise error(f"{what} must be 1 to {max_chars} printable characters, not all spaces")


_STORED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def stored_id(value: str, noun: str) -> str:
    """An id Taskgate made (a UUID, `taskgate.ids`) as a client sends it back in a path. Anything
    else names nothing stored: NotFoundError at once, so no odd text (NUL, megabytes) reaches the store."""
    if _STORED_ID.fullmatch(value):
        return value
    shown = value if len(value) <= 40 else value[:40] + "..."
    raise NotFoundError(f"{noun} '{shown}' not found")
def tool_name(value: Any, pattern: re.Pattern[str], seen: set[str], where: str) -> str:
    """A declared tool's name: one `pattern` matches (each wire format bounds it its own way), and
    not declared before in the same request (`seen`, which it joins): a model could not tell two
    tools of one name apart."""
    if not isinstance(value, str) or not pattern.match(value):
        raise BadRequestError(f"{where} must match {pattern.pattern}, got {value!r}")
    if value in seen:
        raise BadRequestError(f"{where} '{value}' is declared twice")
    seen.add(value)
    return value


def object_items(value: Any, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The members of the array field `name`, each with the place it names in an error (`tools[2]`):
    every dialect's tools and items are checked this way, and a member that is not an object, or a
    `value` that is not an array, is a 400 saying so."""
    if not isinstance(value, list):
        raise BadRequestError(f"{name} must be an array")
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise BadRequestError(f"{where} must be an object")
        yield where, item
