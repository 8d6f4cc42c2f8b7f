"""A v3 call's preferences: `route.prefer`, `hints` and `reasoning_summary`, honoured or refused.

`prefer` (fast / cheap / quality / balanced) picks the model when the call names none, as Opper's
own gateway does ("a call without a model falls through to the Route rule, then to the prefer
hint"); an explicit model is the caller's choice and wins. Taskgate knows nothing of latency or
quality, so which model a preference means is the operator's word: `TASKGATE_ROUTE_MODELS`
(`fast=openai/gpt-4o-mini,quality=anthropic/claude-sonnet-4-6`). `balanced` without an entry is
the server's default model; any other preference without one is a 400, never a silent default.

`hints` also carries generation parameters (temperature, top_p, max_tokens, reasoning_effort),
which become the call's options. `reasoning_summary` asks for the model's reasoning summarised,
which none of Taskgate's adapters can return (chat completions and Anthropic messages have no
such output), so any value is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskgate.api.body_schemas import INTEGER, NUMBER, JsonSchema, nullable, obj
from taskgate.config import ROUTE_PREFERENCES
from taskgate.engine.task import ModelChoice, Task
from taskgate.errors import BadRequestError

REASONING_EFFORTS = ("low", "medium", "high")

_PREFER: JsonSchema = {"type": "string", "enum": list(ROUTE_PREFERENCES),
                       "description": "Pick the model by goal when `model` is absent (TASKGATE_ROUTE_MODELS)"}
ROUTE_SCHEMA: JsonSchema = nullable(obj({"prefer": nullable(_PREFER)}, description="Model routing preference",
                                        additionalProperties=False))
HINTS_SCHEMA: JsonSchema = nullable(obj({
    "prefer": nullable(_PREFER),
    "temperature": nullable({**NUMBER, "minimum": 0, "maximum": 2}),
    "top_p": nullable({**NUMBER, "minimum": 0, "maximum": 1}),
    "max_tokens": nullable({**INTEGER, "minimum": 1, "maximum": 2**31 - 1}),
    "reasoning_effort": nullable({"type": "string", "enum": list(REASONING_EFFORTS)}),
}, description="A model preference and generation parameters; other keys are refused",
    additionalProperties=False))
OPTION_HINTS = ("temperature", "top_p", "max_tokens", "reasoning_effort")
REASONING_SUMMARY_SCHEMA: JsonSchema = {"type": "null", "description": "Not supported: no provider adapter "
                                                                       "returns reasoning summaries"}


def apply_preferences(task: Task, body: Mapping[str, Any], route_models: Mapping[str, str]) -> None:
    """Fold the body's preferences into `task` (its model and options), or raise a 400 naming
    the value that cannot be honoured. The router has checked their shapes against the schemas
    above; what is checked here is what a schema cannot say."""
    if body.get("reasoning_summary") is not None:
        raise BadRequestError("reasoning_summary is not supported: no provider adapter of this server "
                              "returns reasoning summaries")
    hints = body.get("hints") or {}
    route = body.get("route") or {}
    prefer = _prefer(route.get("prefer"), hints.get("prefer"))
    for key in OPTION_HINTS:
        value = hints.get(key)
        if value is None:
            continue
        if task.options.get(key, value) != value:
            raise BadRequestError(f"hints.{key} and the request's {key} disagree; give one")
        task.options[key] = value
    if prefer is not None and not task.models:
        task.models = _preferred(prefer, route_models)


def _prefer(route: str | None, hint: str | None) -> str | None:
    if route is not None and hint is not None and route != hint:
        raise BadRequestError(f"route.prefer '{route}' and hints.prefer '{hint}' disagree; give one")
    return route if route is not None else hint


def _preferred(prefer: str, route_models: Mapping[str, str]) -> list[ModelChoice]:
    model = route_models.get(prefer)
    if model is not None:
        return [ModelChoice(model)]
    if prefer == "balanced":
        return []  # the server's default model is its balanced choice
    raise BadRequestError(f"route.prefer '{prefer}' has no model on this server; the operator maps preferences "
                          "to models with TASKGATE_ROUTE_MODELS, or name a model")
