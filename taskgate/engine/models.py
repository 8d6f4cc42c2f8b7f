"""Parsing the `model` field (spec §4), shared by every dialect: str | {name, options, extra_headers} | list."""

from __future__ import annotations

import re
from typing import Any

from taskgate.engine.task import ModelChoice
from taskgate.errors import BadRequestError
from taskgate.providers.upstream_http import is_protected_header

MAX_MODEL_NAME_CHARS = 256
MAX_EXTRA_HEADERS = 32
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 8192
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 field name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF, NUL and the other controls but tab


def parse_model_field(value: Any) -> list[ModelChoice]:
    """Turn a TModel into a fallback chain. None or an empty list means the server default."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_parse_one(item, position) for position, item in enumerate(items)]


def _parse_one(item: Any, position: int) -> ModelChoice:
    where = f"model[{position}]"
    if isinstance(item, str):
        return ModelChoice(name=_name(item, where))
    if isinstance(item, dict):
        name = item.get("name")
        if not isinstance(name, str):
            raise BadRequestError(f"{where} must have a non-empty string 'name'")
        # Null means absent; an empty list or string is a wrong value, not a missing one.
        options = item.get("options")
        if options is not None and not isinstance(options, dict):
            raise BadRequestError(f"{where}.options must be an object")
        headers = item.get("extra_headers")
        extra_headers = _extra_headers(headers, f"{where}.extra_headers") if headers is not None else {}
        return ModelChoice(name=_name(name, f"{where}.name"), options=dict(options or {}), extra_headers=extra_headers)
    raise BadRequestError(f"{where} must be a string 'provider/model' or an object with 'name'")


def _name(value: str, where: str) -> str:
    name = value.strip()
    if not name:
        raise BadRequestError(f"{where} is an empty string")
    if len(name) > MAX_MODEL_NAME_CHARS:
        raise BadRequestError(f"{where} is longer than {MAX_MODEL_NAME_CHARS} characters")
    return name


def _extra_headers(value: Any, where: str) -> dict[str, str]:
    """Headers the caller adds to the upstream request. They go out on a pooled connection next to
    the adapter's own credentials, so they may neither break the request's framing (CR/LF, a body
    length, hop-by-hop headers) nor replace those credentials or the upstream's Host."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequestError(f"{where} must be an object of strings")
    if len(value) > MAX_EXTRA_HEADERS:
        raise BadRequestError(f"{where} has more than {MAX_EXTRA_HEADERS} headers")
    for name, header in value.items():
        shown = name if len(name) <= 40 else name[:40] + "..."
        if len(name) > MAX_HEADER_NAME_CHARS or not _TOKEN.fullmatch(name):
            raise BadRequestError(f"{where}: {shown!r} is not a valid header name (RFC 9110 token characters, "
                                  f"at most {MAX_HEADER_NAME_CHARS})")
        if is_protected_header(name):
            raise BadRequestError(f"{where}: {shown!r} cannot be set by the caller (credentials, Host, "
                                  "Content-Length and hop-by-hop headers belong to the server)")
        if len(header) > MAX_HEADER_VALUE_CHARS or _CONTROL.search(header):
            raise BadRequestError(f"{where}: the value of {shown!r} must be at most {MAX_HEADER_VALUE_CHARS} "
                                  "characters without CR, LF, NUL or other control characters")
    return dict(value)
