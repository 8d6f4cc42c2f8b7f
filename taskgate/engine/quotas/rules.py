"""What a limit is: `Quota`, and the checks every way of setting one goes through (API and CLI).

A model list holds globs over the names a call's chain resolves to (`provider/model`, or a custom
model of the project): `*` is any run of characters, `?` one character, nothing else is special
(no `[...]` classes: a name never needs one, and a stray bracket is far likelier a mistake).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from taskgate.errors import RequestValidationError
from taskgate.store.key_records import StoredLimits

PERIODS = ("day", "month")
MAX_RPM = 1_000_000  # a million requests a minute: more is no limit, and a typo
MAX_TPM = 10_000_000_000
MAX_BUDGET_USD = 1_000_000.0  # 10^15 nano-USD: exact in the doubles Redis scripts compute with
MAX_MODEL_PATTERNS = 64
MAX_PATTERN_CHARS = 200
_PATTERN = re.compile(r"[A-Za-z0-9._:@/*?+-]+")
_NANO = 1_000_000_000


def nano_usd(usd: float) -> int:
    """USD as whole nano-dollars: counters add integers, exactly, in the store and in Redis."""
    return round(usd * _NANO)


def usd(nano: int) -> float:
    return nano / _NANO


@dataclass(frozen=True, slots=True)
class Quota:
    """One key's or project's limits; None is no limit. `models` empty: any model."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    period: str = "month"
    models: tuple[str, ...] = ()
    _matcher: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _verdicts: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.models:
            joined = "|".join(_glob_regex(pattern) for pattern in self.models)
            object.__setattr__(self, "_matcher", re.compile(f"(?:{joined})"))

    @property
    def counts(self) -> bool:
        """Whether anything is counted for it (a model list alone counts nothing)."""
        return self.rpm is not None or self.tpm is not None or self.budget_usd is not None

    @property
    def limits_anything(self) -> bool:
        return self.counts or bool(self.models)

    def allows(self, model: str) -> bool:
        """Whether `model` matches the list; answers are kept (a bounded set: the names called)."""
        if self._matcher is None:
            return True
        verdict = self._verdicts.get(model)
        if verdict is None:
            verdict = self._matcher.fullmatch(model) is not None
            if len(self._verdicts) < 4096:
                self._verdicts[model] = verdict
        return verdict

    def as_dict(self) -> dict[str, Any]:
        return {"rpm": self.rpm, "tpm": self.tpm, "budget_usd": self.budget_usd,
                "period": self.period, "models": list(self.models) or None}


NO_QUOTA = Quota()


def _glob_regex(pattern: str) -> str:
    return "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


# ---------------------------------------------------------------- checking what callers write

def check_rpm(value: Any) -> int:
    return _whole(value, "rpm", MAX_RPM)


def check_tpm(value: Any) -> int:
    return _whole(value, "tpm", MAX_TPM)


def _whole(value: Any, name: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
        raise RequestValidationError(f"'{name}' must be a whole number from 1 to {most:,} (or null for no limit), "
                                     f"got {_shown(value)}")
    return value


def check_budget(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= MAX_BUDGET_USD:
        raise RequestValidationError(f"'budget_usd' must be a number of dollars above 0 and at most "
                                     f"{MAX_BUDGET_USD:,.0f} (or null for no budget), got {_shown(value)}")
    return float(value)


def check_period(value: Any) -> str:
    if value not in PERIODS:
        raise RequestValidationError(f"'period' must be one of {', '.join(PERIODS)}, got {_shown(value)}")
    return str(value)


def check_models(value: Any, providers: Iterable[str], project_names: Iterable[str]) -> tuple[str, ...]:
    """The model list as written, each entry a well-formed glob naming what this server can call:
    `provider/...` of a known provider (`providers`), or a custom model or alias of the project
    (`project_names`). A name that can never be called would allow nothing, silently."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_MODEL_PATTERNS:
        raise RequestValidationError(f"'models' must be a list of 1 to {MAX_MODEL_PATTERNS} model names or globs "
                                     "(or null for any model)")
    known_providers, names = set(providers), set(project_names)
    patterns: list[str] = []
    for index, pattern in enumerate(value):
        what = f"models[{index}]"
        if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN_CHARS:
            raise RequestValidationError(f"{what} must be a string of 1 to {MAX_PATTERN_CHARS} characters")
        if not _PATTERN.fullmatch(pattern) or "**" in pattern or pattern.startswith("/") or pattern.endswith("/"):
            raise RequestValidationError(
                f"{what} {_shown(pattern)} is not a model glob: write provider/model with * (any characters) "
                "and ? (one character), e.g. 'openai/*' or 'anthropic/claude-*'")
        provider, slash, _ = pattern.partition("/")
        if slash and not is_glob(provider) and provider not in known_providers:
            raise RequestValidationError(f"{what} {_shown(pattern)} names the unknown provider '{provider}'; "
                                         f"known: {', '.join(sorted(known_providers))}")
        if not slash and not is_glob(pattern) and pattern not in names:
            raise RequestValidationError(f"{what} {_shown(pattern)} is neither provider/model nor a custom model "
                                         "or alias of the project")
        if pattern not in patterns:
            patterns.append(pattern)
    return tuple(patterns)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def quota_of(limits: StoredLimits) -> Quota:
    """The stored limits as a Quota (no limits at all: the shared NO_QUOTA)."""
    if limits == StoredLimits():
        return NO_QUOTA
    return Quota(limits.rpm, limits.tpm, limits.budget_usd, limits.budget_period or "month", limits.models or ())
