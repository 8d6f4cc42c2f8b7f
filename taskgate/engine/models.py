"""Parsing the `model` field (spec §4), shared by every dialect: str | {name, options, extra_headers} | list."""

from __future__ import annotations

from typing import Any

from taskgate.engine.task import ModelChoice
from taskgate.errors import BadRequestError


def parse_model_field(value: Any) -> list[ModelChoice]:
    """Turn a TModel into a fallback chain. None or an empty list means the server default."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_parse_one(item, position) for position, item in enumerate(items)]


def _parse_one(item: Any, position: int) -> ModelChoice:
    where = f"model[{position}]"
    if isinstance(item, str):
        if not item.strip():
            raise BadRequestError(f"{where} is an empty string")
        return ModelChoice(name=item.strip())
    if isinstance(item, dict):
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadRequestError(f"{where} must have a non-empty string 'name'")
        options = item.get("options") or {}
        headers = item.get("extra_headers") or {}
        if not isinstance(options, dict):
            raise BadRequestError(f"{where}.options must be an object")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise BadRequestError(f"{where}.extra_headers must be an object of strings")
        return ModelChoice(name=name.strip(), options=dict(options), extra_headers=dict(headers))
    raise BadRequestError(f"{where} must be a string 'provider/model' or an object with 'name'")
