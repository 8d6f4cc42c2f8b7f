"""The limit counters: the rules in process (a fake clock), the same rules in a real Redis
(atomic across two counter instances, as two replicas would hold), Redis going away and coming back,
and the usage totals in a real store (SQLite and Postgres)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from taskgate.engine.quotas.caller import Admission, Caller, current
from taskgate.engine.quotas.counters import Charge, Check, LocalCounters
from taskgate.engine.quotas.gate import QuotaGate
from taskgate.engine.quotas.ledger import UsageLedger
from taskgate.engine.quotas.redis_counters import RedisCounters
from taskgate.engine.quotas.rules import NO_QUOTA, Quota
from taskgate.store import SqlStore
from tests.redis_fixtures import ThrowawayRedis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def nothing_spent(subject: str, period_key: str) -> int:
    return 0


def rpm(limit: int, subject: str = "key:a") -> Check:
    return Check("rpm", "key", subject, limit)


def tpm(limit: int, subject: str = "key:a") -> Check:
    return Check("tpm", "key", subject, limit)


def budget(nano: int, subject: str = "key:a") -> Check:
    return Check("budget", "key", subject, nano, "day:2026-12-03")


# ------------------------------------------------------------------ in process

async def test_a_request_bucket_lets_its_size_through_then_refills_at_its_rate() -> None:
    clock = Clock()
    counters = LocalCounters(nothing_spent, clock)
    assert [await counters.admit([rpm(3)]) for _ in range(3)] == [None, None, None]
    refusal = await counters.admit([rpm(3)])
    assert refusal is not None and refusal.retry_after_s == pytest.approx(20.0)
    clock.now += 19.9
    assert await counters.admit([rpm(3)]) is not None
    clock.now += 0.2
    assert await counters.admit([rpm(3)]) is None
    clock.now += 3600  # a long pause refills to the bucket's size, never beyond
    assert [await counters.admit([rpm(3)]) is None for _ in range(4)] == [True, True, True, False]


async def test_a_refused_check_takes_nothing_from_the_other_buckets() -> None:
    counters = LocalCounters(nothing_spent, Clock())
    assert await counters.admit([rpm(1, "key:a"), rpm(1, "project:p")]) is None
    refusal = await counters.admit([rpm(5, "key:b"), rpm(1, "project:p")])
    assert refusal is not None and refusal.check.subject == "project:p"
    assert [await counters.admit([rpm(5, "key:b")]) is None for _ in range(5)] == [True] * 5


async def test_tokens_are_taken_after_the_call_and_shut_the_bucket_below_zero() -> None:
    clock = Clock()
    counters = LocalCounters(nothing_spent, clock)
    assert await counters.admit([tpm(600)]) is None
    counters.charge([Charge("tpm", "key:a", 900, 600)])  # 300 tokens in debt
    refusal = await counters.admit([tpm(600)])
    assert refusal is not None and refusal.retry_after_s == pytest.approx(30.0)  # 300 tokens at 10 per second
    clock.now += 30.1
    assert await counters.admit([tpm(600)]) is None


async def test_a_budget_starts_from_the_store_and_counts_charges() -> None:
    seeded: list[tuple[str, str]] = []

    async def seed(subject: str, period_key: str) -> int:
        seeded.append((subject, period_key))
        return 700

    counters = LocalCounters(seed, Clock())
    assert await counters.admit([budget(1000)]) is None
    counters.charge([Charge("budget", "key:a", 299, period_key="day:2026-12-03")])
    assert await counters.admit([budget(1000)]) is None
    counters.charge([Charge("budget", "key:a", 1, period_key="day:2026-12-03")])
    refusal = await counters.admit([budget(1000)])
    assert refusal is not None and refusal.spent_nano == 1000
    assert seeded == [("key:a", "day:2026-12-03")]  # read once, then counted here


# ------------------------------------------------------------------ Redis

async def test_redis_counts_one_bucket_across_replicas_atomically(redis_url: str, redis_prefix: str) -> None:
    replicas = [RedisCounters(redis_url, redis_prefix, nothing_spent, LocalCounters(nothing_spent))
                for _ in range(2)]
    try:
        verdicts = await asyncio.gather(*(replicas[n % 2].admit([rpm(10)]) for n in range(40)))
        assert sum(verdict is None for verdict in verdicts) == 10
        refused = [verdict for verdict in verdicts if verdict is not None]
        assert all(0 < refusal.retry_after_s <= 6.1 for refusal in refused)
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_redis_budgets_are_seeded_once_and_charged_by_every_replica(redis_url: str, redis_prefix: str) -> None:
    seeds: list[str] = []

    async def seed(subject: str, period_key: str) -> int:
        seeds.append(subject)
        return 400

    one, two = (RedisCounters(redis_url, redis_prefix, seed, LocalCounters(seed)) for _ in range(2))
    try:
        assert await one.admit([budget(1000)]) is None
        await one.charge([Charge("budget", "key:a", 300, period_key="day:2026-12-03")])
        assert await two.admit([budget(1000)]) is None  # 700 spent
        await two.charge([Charge("budget", "key:a", 300, period_key="day:2026-12-03")])
        refusal = await one.admit([budget(1000)])
        assert refusal is not None and refusal.spent_nano == 1000
        assert seeds == ["key:a"]
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_tokens_per_minute(redis_url: str, redis_prefix: str) -> None:
    counters = RedisCounters(redis_url, redis_prefix, nothing_spent, LocalCounters(nothing_spent))
    try:
        assert await counters.admit([tpm(60)]) is None
        await counters.charge([Charge("tpm", "key:a", 90, 60)])
        refusal = await counters.admit([tpm(60)])
        assert refusal is not None and 29 < refusal.retry_after_s <= 30.1
    finally:
        await counters.aclose()


async def test_redis_away_falls_back_to_this_process_then_returns(throwaway_redis: ThrowawayRedis,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    local = LocalCounters(nothing_spent)
    counters = RedisCounters(throwaway_redis.url, "t:", nothing_spent, local)
    try:
        assert await counters.admit([rpm(3), budget(10_000)]) is None
        await counters.charge([Charge("budget", "key:a", 100, period_key="day:2026-12-03")])
        throwaway_redis.kill()
        with caplog.at_level(logging.WARNING, logger="taskgate.limits"):
            verdicts = [await counters.admit([rpm(3)]) for _ in range(5)]
            await counters.charge([Charge("budget", "key:a", 250, period_key="day:2026-12-03")])
        assert sum(v is None for v in verdicts) == 3  # still limited, in process
        assert counters.degraded
        warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1
        throwaway_redis.start()  # an empty Redis on the same port
        await asyncio.sleep(1.1)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="taskgate.limits"):
            assert await counters.admit([rpm(3)]) is None  # a fresh bucket in the new Redis
        assert not counters.degraded
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await counters.aclose()


async def test_an_unreachable_redis_never_fails_a_check(caplog: pytest.LogCaptureFixture) -> None:
    from tests.harness import free_port

    counters = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", "t:", nothing_spent, LocalCounters(nothing_spent))
    try:
        with caplog.at_level(logging.WARNING, logger="taskgate.limits"):
            assert await counters.admit([rpm(1)]) is None
            assert await counters.admit([rpm(1)]) is not None
            await counters.charge([Charge("tpm", "key:a", 5, 10)])
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    finally:
        await counters.aclose()


# ------------------------------------------------------------------ usage totals

async def test_usage_totals_add_up_across_ledgers_and_flushes(store: SqlStore) -> None:
    subject = f"key:{uuid.uuid4()}"
    one, two = UsageLedger(store.keys), UsageLedger(store.keys)
    one.add([subject], ["day:2026-12-03", "month:2026-12"], requests=1)
    one.add([subject], ["day:2026-12-03"], tokens=10, cost_nano=5)
    two.add([subject], ["day:2026-12-03"], requests=2, tokens=1, cost_nano=7)
    await one.flush()
    totals = await two.totals([subject], ["day:2026-12-03", "month:2026-12"])
    assert (totals[(subject, "day:2026-12-03")].requests, totals[(subject, "day:2026-12-03")].tokens) == (3, 11)
    await asyncio.gather(one.flush(), two.flush())
    assert await UsageLedger(store.keys).spent(subject, "day:2026-12-03") == 12
    assert (await one.totals([subject], ["month:2026-12"]))[(subject, "month:2026-12")].requests == 1


# ------------------------------------------------------------------ the gate's way in for callers without limits


def test_a_caller_without_limits_is_counted_once_per_request_without_a_coroutine_and_a_limited_one_is_not() -> None:
    gate = QuotaGate(LocalCounters(nothing_spent), UsageLedger(None))  # type: ignore[arg-type]  # never flushed
    assert gate.admit_unlimited()  # no request's key: nothing to count
    free = Admission(Caller("k1", "p1", admin=False, operator=False, key_quota=NO_QUOTA, project_quota=NO_QUOTA))
    token = current.set(free)
    try:
        assert gate.admit_unlimited() and gate.admit_unlimited()  # a request's second model call (n choices)
    finally:
        current.reset(token)
    assert free.counted
    assert {row: totals[0] for row, totals in gate.ledger._pending.items()} == {
        (subject, period): 1 for subject in ("project:p1", "key:k1") for period in gate._periods.keys().values()}
    limited = Admission(Caller("k2", "p1", admin=False, operator=False, key_quota=Quota(rpm=5),
                               project_quota=NO_QUOTA))
    token = current.set(limited)
    try:
        assert not gate.admit_unlimited()  # its limits are checked by `admit`
    finally:
        current.reset(token)
    assert not limited.counted
