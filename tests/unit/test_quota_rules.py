"""What a limit is: model globs, the checks of what callers write, and budget periods."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskgate.engine.quotas.periods import period_bounds, period_key, seconds_left
from taskgate.engine.quotas.rules import NO_QUOTA, Quota, check_models, nano_usd, quota_of, usd
from taskgate.errors import RequestValidationError
from taskgate.store.key_records import StoredLimits

PROVIDERS = ["openai", "anthropic", "groq"]


@pytest.mark.parametrize(("patterns", "model", "allowed"), [
    (("openai/*",), "openai/gpt-4o-mini", True),
    (("openai/*",), "openai/ft:gpt-4o:acme/x", True),
    (("openai/*",), "openaiX/gpt-4o", False),
    (("anthropic/claude-*",), "anthropic/claude-haiku-4-5", True),
    (("anthropic/claude-*",), "anthropic/other", False),
    (("openai/gpt-4o",), "openai/gpt-4o-mini", False),  # exact, not a prefix
    (("openai/gpt-4o?mini",), "openai/gpt-4o-mini", True),
    (("openai/gpt.4o",), "openai/gpt-4o", False),  # a dot is a dot
    (("*",), "anything/at-all", True),
    (("my-model",), "my-model", True),
    ((), "whatever/model", True),
])
def test_model_globs(patterns: tuple[str, ...], model: str, allowed: bool) -> None:
    quota = Quota(models=patterns)
    assert quota.allows(model) is allowed
    assert quota.allows(model) is allowed  # from its kept verdict


def test_check_models_keeps_order_and_drops_repeats() -> None:
    assert check_models(["openai/*", "anthropic/claude-*", "openai/*", "alias-a", "*/gpt-4o"], PROVIDERS,
                        ["alias-a"]) == ("openai/*", "anthropic/claude-*", "alias-a", "*/gpt-4o")


@pytest.mark.parametrize("bad", [["cohere!/x"], ["openai/x y"], ["openai/[a]"], ["a/"], ["mistral/x"], ["unknown"],
                                 ["openai/**"], [None], "openai/*", [], ["x"] * 100])
def test_check_models_refuses(bad: object) -> None:
    with pytest.raises(RequestValidationError):
        check_models(bad, PROVIDERS, [])


def test_stored_limits_become_a_quota() -> None:
    assert quota_of(StoredLimits()) is NO_QUOTA and not NO_QUOTA.limits_anything
    quota = quota_of(StoredLimits(rpm=5, budget_usd=2.0, models=("openai/*",)))
    assert quota.period == "month" and quota.counts and not quota.allows("groq/x")
    assert not Quota(models=("openai/*",)).counts


def test_periods_are_utc_days_and_months() -> None:
    moment = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert period_key("day", moment) == "day:2026-12-31"
    assert period_key("month", moment) == "month:2026-12"
    assert period_bounds("month:2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_bounds("day:2026-02-28")[1] == datetime(2026, 3, 1, tzinfo=UTC)
    assert seconds_left("day:2026-12-31", moment) == 1800


def test_dollars_are_counted_in_whole_nano_dollars() -> None:
    assert nano_usd(0.000000123) == 123 and usd(nano_usd(1234.5)) == 1234.5
    assert sum(nano_usd(0.1) for _ in range(10)) == nano_usd(1.0)  # floats would drift
