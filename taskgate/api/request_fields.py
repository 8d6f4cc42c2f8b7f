"""The one check of an optional, typed request field, shared by every dialect's parser.

The dialects word their answers differently (v2 says "or null" and answers 422; v3, spans and
the compat endpoint answer 400), so each call passes its wording and error class, but the check
itself lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskgate.errors import BadRequestError, TaskgateError


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
