"""1.7.2 types a span's or an example's `input` and `output` as strings wherever it reads them
back (saved examples, traces): a JSON value goes out as its JSON text, a string as itself."""

from __future__ import annotations

from typing import Any

import orjson


def wire_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
