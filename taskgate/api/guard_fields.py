"""The two wire forms of guards, parsed into the engine's dialect-free `Guards`.

v3 bodies carry `guard: {input: [GuardrailConfig], output: [...]}` (spec §3.3); compat requests,
whose bodies belong to OpenAI or Anthropic, carry headers instead (spec §8.2):
`X-Opper-Guard-Input: pii,secrets`, `X-Opper-Guard-Output: ...`, `X-Opper-Guard-Action: flag|block|redact`.
The GuardrailConfig fields this server cannot honour (`applies_to`, `check`, `model`: a guard run
by a model) are refused by name rather than ignored, as is an action header with no guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskgate.api.body_schemas import STRING, JsonSchema, array, nullable, obj
from taskgate.engine.guards import GuardRule, Guards, guard_rule
from taskgate.engine.guards.spec import ACTIONS, GUARD_TYPES, MAX_RULES, bounded
from taskgate.errors import BadRequestError

DIRECTIONS = ("input", "output")
_UNSUPPORTED = ("applies_to", "check", "model")
_NOT_SUPPORTED = "Not supported by this server: a 400 when given"

GUARD_RULE_SCHEMA: JsonSchema = obj({
    "type": {"type": "string", "enum": list(GUARD_TYPES)},
    "action": nullable({"type": "string", "enum": list(ACTIONS), "description": "flag (the default), block or redact"}),
    "custom_patterns": nullable(array(STRING, description="RE2 patterns, for type custom_patterns")),
    "presets": nullable(array(STRING, description="The kinds to look for (e.g. email, card), all when absent")),
    "replacement": nullable({**STRING, "description": "With redact: the text every finding becomes, never restored"}),
    **{name: {"description": _NOT_SUPPORTED} for name in _UNSUPPORTED},
}, required=("type",), title="GuardrailConfig")
GUARD_SCHEMA: JsonSchema = nullable(obj({
    direction: nullable(array(GUARD_RULE_SCHEMA, maxItems=MAX_RULES)) for direction in DIRECTIONS
}, description="Guards over what goes to the provider (input) and what comes back (output)"))


def guards_from_body(value: Any, where: str = "guard") -> Guards | None:
    """v3's `guard` object; None when it asks for no guard at all."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequestError(f"'{where}' must be an object with 'input' and/or 'output' lists")
    unknown = sorted(set(value) - set(DIRECTIONS))
    if unknown:
        raise BadRequestError(f"'{where}' has unknown fields {unknown}; it takes 'input' and 'output'")
    rules = {direction: _rules(value.get(direction), f"{where}.{direction}") for direction in DIRECTIONS}
    return Guards(**rules) if any(rules.values()) else None


def _rules(value: Any, where: str) -> tuple[GuardRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequestError(f"{where} must be a list of guard objects")
    rules = []
    for index, config in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(config, dict):
            raise BadRequestError(f"{here} must be an object with a 'type'")
        for name in _UNSUPPORTED:
            if config.get(name) is not None:
                raise BadRequestError(f"{here}.{name} is not supported by this server")
        rules.append(guard_rule(config.get("type"), config.get("action"), here,
                                patterns=config.get("custom_patterns"), presets=config.get("presets"),
                                replacement=config.get("replacement")))
    return bounded(rules, where)


_GUARD_HEADERS = (*(f"x-opper-guard-{direction}" for direction in DIRECTIONS), "x-opper-guard-action")


def guards_from_headers(headers: Mapping[str, str]) -> Guards | None:
    """The X-Opper-Guard-* headers (lower-cased names); None when none asks for a guard."""
    if headers.keys().isdisjoint(_GUARD_HEADERS):  # most calls: nothing to read
        return None
    action = headers.get("x-opper-guard-action", "").strip() or None
    rules = {direction: _header_rules(headers.get(f"x-opper-guard-{direction}", ""), direction, action)
             for direction in DIRECTIONS}
    if not any(rules.values()):
        if action is not None:
            raise BadRequestError("the X-Opper-Guard-Action header needs X-Opper-Guard-Input or X-Opper-Guard-Output")
        return None
    return Guards(**rules)


def _header_rules(value: str, direction: str, action: str | None) -> tuple[GuardRule, ...]:
    where = f"the X-Opper-Guard-{direction.capitalize()} header"
    names = [name.strip() for name in value.split(",")] if value.strip() else []
    if "" in names:
        raise BadRequestError(f"{where} must be a comma-separated list of guard types, e.g. pii,secrets")
    rules = []
    for name in names:
        if name == "custom_patterns":
            raise BadRequestError(f"{where}: custom_patterns needs its patterns, which only a v3 body's "
                                  "guard can carry")
        rules.append(guard_rule(name, action, where, type_field=f"a guard type in {where}",
                                action_field="the X-Opper-Guard-Action header"))
    return bounded(rules, where)
