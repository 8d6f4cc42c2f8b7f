"""What a call asks its guards to do, free of any dialect: each dialect parses its own wire form
(v3's `guard` object, the compat `X-Opper-Guard-*` headers) into these, through `guard_rule`, so
an unknown type, action or preset is refused in the same words everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskgate.engine.guards.kinds import PII, PII_KINDS, SECRET_KINDS, SECRETS
from taskgate.engine.guards.patterns import CUSTOM_PATTERNS, compile_patterns
from taskgate.errors import BadRequestError

FLAG, BLOCK, REDACT = "flag", "block", "redact"
ACTIONS = (FLAG, BLOCK, REDACT)
GUARD_TYPES = (PII, SECRETS, CUSTOM_PATTERNS)
KINDS: dict[str, frozenset[str]] = {PII: PII_KINDS, SECRETS: SECRET_KINDS}
MAX_RULES = 16  # per direction
MAX_REPLACEMENT_CHARS = 256


@dataclass(frozen=True, slots=True)
class GuardRule:
    """One guard: what to look for (`type`, narrowed to `kinds` by presets) and what to do about it.
    `replacement`, when set, replaces every finding (and is never restored)."""

    type: str
    action: str = FLAG
    kinds: frozenset[str] | None = None
    patterns: tuple[Any, ...] = ()  # compiled RE2 patterns, for custom_patterns
    replacement: str | None = None


@dataclass(frozen=True, slots=True)
class Guards:
    input: tuple[GuardRule, ...] = ()
    output: tuple[GuardRule, ...] = ()


def _one_of(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise BadRequestError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def guard_rule(kind: Any, action: Any, where: str, *, patterns: Any = None, presets: Any = None,
               replacement: Any = None, type_field: str | None = None, action_field: str | None = None) -> GuardRule:
    """A checked rule; `where` names it in errors (`guard.input[0]`), and `type_field` and
    `action_field` name where its type and action came from when that is not `where.type` and
    `where.action` (a header)."""
    kind = _one_of(kind, GUARD_TYPES, type_field or f"{where}.type")
    action = _one_of(FLAG if action is None else action, ACTIONS, action_field or f"{where}.action")
    compiled: tuple[Any, ...] = ()
    if kind == CUSTOM_PATTERNS:
        if not isinstance(patterns, list):
            raise BadRequestError(f"{where}.custom_patterns must be a list of patterns for type custom_patterns")
        compiled = compile_patterns(patterns, where)
    elif patterns is not None:
        raise BadRequestError(f"{where}.custom_patterns is only for type custom_patterns")
    kinds: frozenset[str] | None = None
    if presets is not None:
        known = KINDS.get(kind)
        if known is None:
            raise BadRequestError(f"{where}.presets is only for types pii and secrets")
        if not isinstance(presets, list) or not presets or not all(isinstance(p, str) for p in presets):
            raise BadRequestError(f"{where}.presets must be a non-empty list of strings")
        unknown = sorted(set(presets) - known)
        if unknown:
            raise BadRequestError(f"{where}.presets has unknown {kind} kinds {unknown}; "
                                  f"known: {', '.join(sorted(known))}")
        kinds = frozenset(presets)
    if replacement is not None:
        if not isinstance(replacement, str) or len(replacement) > MAX_REPLACEMENT_CHARS:
            raise BadRequestError(f"{where}.replacement must be a string of at most {MAX_REPLACEMENT_CHARS} characters")
        if action != REDACT:
            raise BadRequestError(f"{where}.replacement is only for action redact")
    return GuardRule(kind, action, kinds, compiled, replacement)


def bounded(rules: list[GuardRule], where: str) -> tuple[GuardRule, ...]:
    if len(rules) > MAX_RULES:
        raise BadRequestError(f"{where} may hold at most {MAX_RULES} guards")
    return tuple(rules)
