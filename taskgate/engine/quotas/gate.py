"""What the engine asks before a model call and tells after one.

`admit(models)`: every model of the chain (after aliases) must be on the key's and the project's
lists (403), and every counted limit must let the call in (429 with Retry-After, or 402 for a spent
budget); the request is then counted once, however many model calls it makes. `charge(span)`: a
recorded call's tokens and cost go to the buckets, the budgets and the usage totals. A caller
without limits costs a dict update per request here, and nothing is checked.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from taskgate.engine.quotas.caller import Admission, Caller, current, key_subject, project_subject
from taskgate.engine.quotas.counters import Charge, Check, LocalCounters, Refusal, Scope
from taskgate.engine.quotas.ledger import UsageLedger
from taskgate.engine.quotas.periods import period_bounds, period_key
from taskgate.engine.quotas.rules import Quota, nano_usd, usd
from taskgate.errors import BudgetExceededError, ModelNotAllowedError, RateLimitedError
from taskgate.store.base import SpanRecord

if TYPE_CHECKING:  # the redis client (6 MB) is imported only where TASKGATE_REDIS_URL is set (app.py)
    from taskgate.engine.quotas.redis_counters import RedisCounters


class _Periods:
    """Today's and this month's period keys, worked out again only when the UTC day changes."""

    def __init__(self) -> None:
        self._until = 0.0
        self._keys: dict[str, str] = {}

    def keys(self) -> dict[str, str]:
        now = time.time()
        if now >= self._until:
            moment = datetime.fromtimestamp(now, UTC)
            self._keys = {"day": period_key("day", moment), "month": period_key("month", moment)}
            self._until = period_bounds(self._keys["day"])[1].timestamp()
        return self._keys


class QuotaGate:
    def __init__(self, counters: LocalCounters | RedisCounters, ledger: UsageLedger) -> None:
        self.ledger = ledger
        self._counters = counters
        self._local = counters if isinstance(counters, LocalCounters) else None
        self._redis = None if isinstance(counters, LocalCounters) else counters
        self._periods = _Periods()

    async def admit(self, models: Sequence[str]) -> None:
        """Let the current request call `models`, or raise why not (see the module's docstring)."""
        admission = current.get()
        if admission is None:
            return  # not on behalf of a request's key (a knowledge file resumed at start-up)
        caller = admission.caller
        # Marked first: the model calls of one request (OpenAI's `n` choices) may be admitted at once.
        counting, admission.counted = not admission.counted, True
        if caller.limited:
            try:
                await self._check(caller, models, counting)
            except Exception:
                if counting:
                    admission.counted = False
                raise
        if counting:
            self.ledger.add(caller.subjects, self._periods.keys().values(), requests=1)

    def admit_unlimited(self) -> bool:
        """`admit` for a request whose caller has no limits (or that no key makes), which has nothing
        to check: counted here, without a coroutine. False when the limits must be checked: `admit`."""
        admission = current.get()
        if admission is None:
            return True
        caller = admission.caller
        if caller.limited:
            return False
        if not admission.counted:
            admission.counted = True
            self.ledger.add(caller.subjects, self._periods.keys().values(), requests=1)
        return True

    async def _check(self, caller: Caller, models: Sequence[str], counting: bool) -> None:
        for scope, quota in (("key", caller.key_quota), ("project", caller.project_quota)):
            for model in models:
                if not quota.allows(model):
                    raise ModelNotAllowedError(
                        f"model '{model}' is not allowed for this {_whose(scope)}; allowed: "
                        f"{', '.join(quota.models)}", details={"model": model, "scope": scope,
                                                               "allowed": list(quota.models)})
        checks = self._checks(caller, count_request=counting)
        if checks:
            refusal = await self._counters.admit(checks)
            if refusal is not None:
                raise _refused(refusal, caller)

    def charge(self, span: SpanRecord) -> None:
        """Count what a recorded model call used, for the request's caller. Spans that no model
        answered, and those a request records around its model calls (a knowledge query's), carry
        no usage of their own and are skipped."""
        admission = current.get()
        if admission is None or span.model_used is None:
            return
        tokens = int((span.usage or {}).get("total_tokens") or 0)
        cost = nano_usd(span.cost) if span.cost else 0
        if not tokens and not cost:
            return
        caller = admission.caller
        periods = self._periods.keys()
        self.ledger.add(caller.subjects, periods.values(), tokens=tokens, cost_nano=cost)
        if not caller.counting:
            return
        charges = [charge for _, subject, quota in _quotas(caller) if quota.counts
                   for charge in _charges(subject, quota, tokens, cost, periods)]
        if not charges:
            return
        if self._local is not None:
            self._local.charge(charges)
        elif self._redis is not None:
            self._track(admission, asyncio.create_task(self._redis.charge(charges)))

    async def usage_of(self, subject: str, quota: Quota) -> dict[str, object]:
        """A key's or project's usage today and this month, and its budget's state."""
        periods = self._periods.keys()
        totals = await self.ledger.totals([subject], periods.values())
        usage: dict[str, object] = {}
        for period, key in periods.items():
            found = totals[(subject, key)]
            start, end = period_bounds(key)
            usage[period] = {"requests": found.requests, "tokens": found.tokens, "cost_usd": usd(found.cost_nano_usd),
                             "period_start": start.isoformat(), "period_end": end.isoformat()}
        spent = totals[(subject, periods[quota.period])].cost_nano_usd
        usage["budget"] = None if quota.budget_usd is None else {
            "budget_usd": quota.budget_usd, "period": quota.period, "spent_usd": usd(spent),
            "remaining_usd": max(0.0, quota.budget_usd - usd(spent))}
        return usage

    async def aclose(self) -> None:
        await self.ledger.flush()
        if self._redis is not None:
            await self._redis.aclose()

    def _checks(self, caller: Caller, count_request: bool) -> list[Check]:
        checks: list[Check] = []
        periods = self._periods.keys()
        for scope, subject, quota in _quotas(caller):
            if count_request and quota.rpm is not None:
                checks.append(Check("rpm", scope, subject, quota.rpm))
            if quota.tpm is not None:
                checks.append(Check("tpm", scope, subject, quota.tpm))
            if quota.budget_usd is not None:
                checks.append(Check("budget", scope, subject, nano_usd(quota.budget_usd), periods[quota.period]))
        return checks

    @staticmethod
    def _track(admission: Admission, task: asyncio.Task[None]) -> None:
        admission.pending.add(task)
        task.add_done_callback(admission.pending.discard)


def _quotas(caller: Caller) -> list[tuple[Scope, str, Quota]]:
    """(scope, subject, quota) of the key (a bootstrap key has none of its own) and of the project."""
    key: list[tuple[Scope, str, Quota]] = [] if caller.key_id is None else [
        ("key", key_subject(caller.key_id), caller.key_quota)]
    return [*key, ("project", project_subject(caller.project_id), caller.project_quota)]


def _charges(subject: str, quota: Quota, tokens: int, cost: int, periods: dict[str, str]) -> list[Charge]:
    charges = []
    if quota.tpm is not None and tokens:
        charges.append(Charge("tpm", subject, tokens, quota.tpm))
    if quota.budget_usd is not None and cost:
        charges.append(Charge("budget", subject, cost, period_key=periods[quota.period]))
    return charges


def _whose(scope: Scope | str) -> str:
    return "API key" if scope == "key" else "project"


def _refused(refusal: Refusal, caller: Caller) -> RateLimitedError | BudgetExceededError:
    check = refusal.check
    whose = _whose(check.scope)
    if check.kind == "budget":
        _, end = period_bounds(check.period_key)
        quota = caller.key_quota if check.scope == "key" else caller.project_quota
        return BudgetExceededError(
            f"this {whose} spent its budget of ${usd(check.limit):.2f} for the {quota.period} "
            f"(spent ${usd(refusal.spent_nano):.6f}); it resets at {end.isoformat()}",
            details={"scope": check.scope, "budget_usd": usd(check.limit), "spent_usd": usd(refusal.spent_nano),
                     "period": quota.period, "resets_at": end.isoformat()})
    wait = max(1, math.ceil(refusal.retry_after_s))
    unit = "requests" if check.kind == "rpm" else "tokens"
    return RateLimitedError(f"this {whose} is limited to {check.limit} {unit} per minute; retry in {wait} s",
                            retry_after=wait, details={"scope": check.scope, "limit": check.kind,
                                                       "per_minute": check.limit, "retry_after_s": wait})
