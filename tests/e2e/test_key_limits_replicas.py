"""Limits counted in Redis: on one server, across three `taskgate serve` replicas sharing one
Postgres and one Redis (the N+1th call is refused wherever it lands, for requests per minute and
for a budget), and with Redis killed under a running server (no 5xx, one warning, back when it is)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.limits_helpers import call, make_key, usage
from tests.redis_fixtures import ThrowawayRedis
from tests.store_fixtures import PostgresDatabases


@pytest.fixture
def replicas(fake: FakeProvider, postgres: PostgresDatabases | str, redis_url: str, redis_prefix: str,
             tmp_path: Path) -> Iterator[list[ServerProcess]]:
    if isinstance(postgres, str):
        pytest.skip(postgres)
    env = {"TASKGATE_DATABASE_URL": postgres.create(), "TASKGATE_REDIS_URL": redis_url,
           "TASKGATE_REDIS_PREFIX": redis_prefix, "TASKGATE_SPAN_FLUSH_SECONDS": "0.2"}
    servers = [ServerProcess(fake, tmp_path / f"replica-{n}", env=env) for n in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_requests_per_minute_are_counted_across_replicas(replicas: list[ServerProcess]) -> None:
    _, key = make_key(replicas[0], rpm=5)
    statuses = [call(replicas[n % 3], key).status for n in range(5)]
    assert statuses == [200] * 5
    for server in replicas:  # the sixth is refused wherever it lands
        refused = call(server, key)
        assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1


def test_a_budget_is_counted_across_replicas(replicas: list[ServerProcess]) -> None:
    _, probe = make_key(replicas[0])
    cost = call(replicas[0], probe).json()["cost"]["total"]
    key_id, key = make_key(replicas[1], budget_usd=cost * 4.5, period="day")
    assert [call(replicas[n % 3], key).status for n in range(5)] == [200] * 5
    for server in replicas:
        assert call(server, key).status == 402
    time.sleep(0.5)  # the usage totals are written on the flush interval
    for server in replicas:
        assert usage(server, key_id)["day"]["requests"] == 5


def test_limits_in_redis_on_one_server(fake: FakeProvider, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    env = {"TASKGATE_REDIS_URL": redis_url, "TASKGATE_REDIS_PREFIX": redis_prefix}
    with ServerProcess(fake, tmp_path / "data", env=env) as server:
        _, key = make_key(server, rpm=2, tpm=1_000_000)
        assert [call(server, key).status for _ in range(3)] == [200, 200, 429]
        _, probe = make_key(server)
        cost = call(server, probe).json()["cost"]["total"]
        _, limited = make_key(server, budget_usd=cost * 1.5)
        assert [call(server, limited).status for _ in range(3)] == [200, 200, 402]
        assert "unreachable" not in server.stderr_text()


def test_redis_killed_under_a_running_server(fake: FakeProvider, throwaway_redis: ThrowawayRedis,
                                             tmp_path: Path) -> None:
    env = {"TASKGATE_REDIS_URL": throwaway_redis.url}
    with ServerProcess(fake, tmp_path / "data", env=env) as server:
        _, key = make_key(server, rpm=1000, budget_usd=100)
        assert call(server, key).status == 200
        throwaway_redis.kill()
        statuses = [call(server, key).status for _ in range(10)]
        assert statuses == [200] * 10  # counted in process meanwhile: never a 5xx
        _, tight = make_key(server, rpm=2)
        assert [call(server, tight).status for _ in range(3)] == [200, 200, 429]  # still limited
        assert server.stderr_text().count("Redis is unreachable") == 1
        throwaway_redis.start()
        time.sleep(1.2)
        assert call(server, key).status == 200
        assert "Redis answers again" in server.stderr_text()
