"""Counting limits in this process: token buckets for requests and tokens per minute, running
totals for budgets. The same rules as the Redis scripts (`redis_counters`), which count across
replicas; this is what a single node uses, and what replicas fall back to while Redis is away.

Requests and tokens per minute are token buckets: `limit` fits in the bucket, and it refills at
`limit` per 60 s. So a key with rpm 5 may make 5 calls at once, then one every 12 s; unlike a
fixed one-minute window, nothing lets 2 x limit through across a minute's boundary. A request
takes one from its rpm bucket. Tokens are known only after the call: a call is let in while the
tpm bucket holds any, and its tokens are taken afterwards (the bucket may go below zero, and stays
shut until it refills). A budget lets calls in while the period's spend is below it; a call's cost
is added once it is known, so the call that crosses the budget completes and the next is refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["rpm", "tpm", "budget"]
Scope = Literal["key", "project"]
Seed = Callable[[str, str], Awaitable[int]]  # (subject, period key) -> nano-USD spent so far, from the store
WINDOW_S = 60.0
MAX_TRACKED = 100_000  # subjects and periods kept; past it the oldest state is dropped


@dataclass(frozen=True, slots=True)
class Check:
    """One limit of one subject, checked before a call. `limit`: requests or tokens per minute, or
    the budget in nano-USD; `period_key` is a budget's period ("month:2026-12")."""

    kind: Kind
    scope: Scope
    subject: str
    limit: int
    period_key: str = ""


@dataclass(frozen=True, slots=True)
class Charge:
    """What one call used, against one limit: tokens for a tpm bucket, nano-USD for a budget."""

    kind: Kind
    subject: str
    amount: int
    limit: int = 0  # a tpm bucket's size, to refill it by
    period_key: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    check: Check
    retry_after_s: float = 0.0  # rpm and tpm: when the bucket will let a call in
    spent_nano: int = 0  # budget: what the period has spent


def retry_seconds(level: float, needed: float, limit: int) -> float:
    """Seconds until a bucket at `level` refills to `needed` (limit per WINDOW_S)."""
    return max(0.0, (needed - level) * WINDOW_S / limit)


class LocalCounters:
    def __init__(self, seed: Seed, clock: Callable[[], float] = time.monotonic) -> None:
        self._seed = seed
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # "rpm:<subject>" -> (level, when)
        self._spent: dict[str, int] = {}  # "<subject>|<period key>" -> nano-USD

    async def admit(self, checks: Sequence[Check]) -> Refusal | None:
        """None when every check passes, and then one request is taken from each rpm bucket; else
        the first check that refuses, and nothing is taken."""
        now = self._clock()
        for check in checks:
            if check.kind == "budget":
                spent = await self.spent(check.subject, check.period_key)
                if spent >= check.limit:
                    return Refusal(check, spent_nano=spent)
                continue
            level = self._level(f"{check.kind}:{check.subject}", check.limit, now)
            needed = 1.0 if check.kind == "rpm" else math.ulp(0.0)
            if level < needed:
                return Refusal(check, retry_after_s=retry_seconds(level, needed, check.limit))
        for check in checks:
            if check.kind == "rpm":
                bucket = f"rpm:{check.subject}"
                self._buckets[bucket] = (self._level(bucket, check.limit, now) - 1.0, now)
        return None

    async def spent(self, subject: str, period_key: str) -> int:
        """The period's spend: the store's total when first asked, plus what was charged here since."""
        key = f"{subject}|{period_key}"
        spent = self._spent.get(key)
        if spent is None:
            seeded = await self._seed(subject, period_key)
            self._bound(self._spent)
            spent = self._spent.setdefault(key, seeded)
        return spent

    def charge(self, charges: Sequence[Charge]) -> None:
        now = self._clock()
        for charge in charges:
            if charge.kind == "tpm":
                bucket = f"tpm:{charge.subject}"
                self._buckets[bucket] = (self._level(bucket, charge.limit, now) - charge.amount, now)
            elif charge.kind == "budget":
                key = f"{charge.subject}|{charge.period_key}"
                if key in self._spent:  # else the store's total, read at the next check, holds it
                    self._spent[key] += charge.amount

    def _level(self, bucket: str, limit: int, now: float) -> float:
        held = self._buckets.get(bucket)
        if held is None:
            self._bound(self._buckets)
            return float(limit)
        level, when = held
        return min(float(limit), level + (now - when) * limit / WINDOW_S)

    @staticmethod
    def _bound(table: dict[str, object] | dict[str, int] | dict[str, tuple[float, float]]) -> None:
        """Keep the state bounded by the subjects really calling: a full table loses its oldest half."""
        if len(table) >= MAX_TRACKED:
            for key in list(table)[: MAX_TRACKED // 2]:
                del table[key]
