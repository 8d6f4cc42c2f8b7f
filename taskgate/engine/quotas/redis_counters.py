"""Counting limits in Redis, atomically across replicas: each check and each charge is one Lua
script, run whole by Redis while no other command runs, so two replicas can never both take the
last request of a bucket or both see a budget's last dollar unspent.

The scripts keep `counters`' rules (a bucket is a hash of its level and when it was last changed,
by Redis's clock, so replicas need not agree on the time; a budget is an integer of nano-USD per
subject and period, expiring after its period). A budget missing from Redis (its first call of the
period, or Redis lost its data) is seeded from the store's usage totals with SET NX, so replicas
seeding at once agree.

Redis down or unreachable: the checks fall back to this process's counters with one logged
warning, never a 5xx, and Redis is tried again every `RETRY_S`; when it answers, one line says so,
and the spend counted meanwhile is added to its budgets.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from taskgate.engine.quotas.counters import Charge, Check, LocalCounters, Refusal, Seed
from taskgate.engine.quotas.periods import seconds_left

log = logging.getLogger("taskgate.limits")
RETRY_S = 1.0
TIMEOUT_S = 0.5
BUCKET_TTL_S = 120
SEED_ROUNDS = 3

# KEYS: one per check. ARGV: kind, limit per check ("rpm", "tpm", "budget").
# Returns {"ok"}, {"seed", i}, {"rate", i, seconds} or {"budget", i, spent}.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local function level(key, limit)
  local held = redis.call('HMGET', key, 'l', 't')
  if not held[1] then return limit end
  return math.min(limit, tonumber(held[1]) + (now - tonumber(held[2])) * limit / 60)
end
for i, key in ipairs(KEYS) do
  local kind, limit = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  if kind == 'budget' then
    local spent = redis.call('GET', key)
    if not spent then return {'seed', i} end
    if tonumber(spent) >= limit then return {'budget', i, spent} end
  else
    local have = level(key, limit)
    local need = 1
    if kind == 'tpm' then need = 1e-9 end
    if have < need then return {'rate', i, tostring((need - have) * 60 / limit)} end
  end
end
for i, key in ipairs(KEYS) do
  if ARGV[2 * i - 1] == 'rpm' then
    local limit = tonumber(ARGV[2 * i])
    redis.call('HSET', key, 'l', level(key, limit) - 1, 't', now)
    redis.call('EXPIRE', key, BUCKET_TTL)
  end
end
return {'ok'}
""".replace("BUCKET_TTL", str(BUCKET_TTL_S))

# KEYS: one per charge. ARGV: kind, amount, limit per charge. A budget is added to only while it
# exists: a missing one is seeded from the store, which holds this charge too.
CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
for i, key in ipairs(KEYS) do
  local kind, amount = ARGV[3 * i - 2], ARGV[3 * i - 1]
  if kind == 'budget' then
    if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, amount) end
  else
    local limit = tonumber(ARGV[3 * i])
    local held = redis.call('HMGET', key, 'l', 't')
    local have = limit
    if held[1] then have = math.min(limit, tonumber(held[1]) + (now - tonumber(held[2])) * limit / 60) end
    redis.call('HSET', key, 'l', have - tonumber(amount), 't', now)
    redis.call('EXPIRE', key, BUCKET_TTL)
  end
end
return 1
""".replace("BUCKET_TTL", str(BUCKET_TTL_S))


class _Pipeline:
    """Scripts called in one turn of the event loop go to Redis in one pipeline: one round trip and
    one read for every request checking or counting at that moment. Each script stays atomic on
    its own (a pipeline is not a transaction, nor needs to be); under load this turns a round trip
    per call into a round trip per turn of the loop. Scripts are sent by their digest, loaded once,
    and again if Redis forgot them (a restart)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._loaded: set[str] = set()  # digests Redis is known to hold
        self._waiting: list[tuple[str, str, list[str], list[object], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def run(self, script: str, keys: list[str], args: list[object]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((script, _digest(script), keys, args, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._send)  # after the callbacks already due: those of this turn join in
        return future

    def _send(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.create_task(self._execute(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _execute(self, batch: list[tuple[str, str, list[str], list[object], asyncio.Future[Any]]]) -> None:
        results: list[Any]
        try:
            for script, digest, *_ in batch:
                if digest not in self._loaded:
                    await self._redis.script_load(script)
                    self._loaded.add(digest)
            results = await self._send_batch(batch)
            if any(isinstance(result, NoScriptError) for result in results):
                self._loaded.clear()  # Redis restarted: load them again, and try once more
                await self._execute(batch)
                return
        except (RedisError, OSError) as exc:
            results = [exc] * len(batch)
        except asyncio.CancelledError:
            results = [RedisError("the server is stopping")] * len(batch)
        for (*_, future), result in zip(batch, results, strict=True):
            if not future.done():
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


    async def _send_batch(self, batch: list[tuple[str, str, list[str], list[object], asyncio.Future[Any]]],
                          ) -> list[Any]:
        """The scripts' answers (or errors), in order; one alone skips the pipeline's own cost."""
        if len(batch) == 1:
            _, digest, keys, args, _ = batch[0]
            try:
                return [await self._redis.execute_command("EVALSHA", digest, len(keys), *keys, *args)]
            except NoScriptError as exc:
                return [exc]
        pipe = self._redis.pipeline(transaction=False)
        for _, digest, keys, args, _ in batch:
            pipe.execute_command("EVALSHA", digest, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _digest(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


class RedisCounters:
    def __init__(self, url: str, prefix: str, seed: Seed, fallback: LocalCounters) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                              retry=Retry(NoBackoff(), 0), decode_responses=True)
        self._prefix = prefix
        self._seed = seed
        self._local = fallback
        self._pipeline = _Pipeline(self._redis)
        self._down_until: float | None = None  # while set, Redis is not tried before then
        self._missed: dict[str, int] = {}  # budget key -> nano-USD charged while Redis was away

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    async def admit(self, checks: Sequence[Check]) -> Refusal | None:
        if self._skipping():
            return await self._local.admit(checks)
        try:
            refusal = await self._admit_in_redis(checks)
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            return await self._local.admit(checks)
        await self._came_back()
        return refusal

    async def charge(self, charges: Sequence[Charge]) -> None:
        self._local.charge(charges)  # the fallback's view stays close, for when Redis goes away
        if self._skipping():
            self._miss(charges)
            return
        try:
            await self._pipeline.run(CHARGE, [self._key(c.kind, c.subject, c.period_key) for c in charges],
                                     [part for c in charges for part in (c.kind, c.amount, c.limit)])
        except (RedisError, OSError) as exc:
            self._went_down(exc)
            self._miss(charges)
            return
        await self._came_back()

    async def aclose(self) -> None:
        await self._redis.aclose()

    # ------------------------------------------------------------------ in Redis

    async def _admit_in_redis(self, checks: Sequence[Check]) -> Refusal | None:
        keys = [self._key(check.kind, check.subject, check.period_key) for check in checks]
        args: list[object] = [part for check in checks for part in (check.kind, check.limit)]
        for _ in range(SEED_ROUNDS):
            answer = await self._pipeline.run(ADMIT, keys, args)
            verdict = answer[0]
            if verdict == "ok":
                return None
            check = checks[int(answer[1]) - 1]
            if verdict == "rate":
                return Refusal(check, retry_after_s=float(answer[2]))
            if verdict == "budget":
                return Refusal(check, spent_nano=int(answer[2]))
            spent = await self._seed(check.subject, check.period_key)
            ttl = math.ceil(seconds_left(check.period_key, datetime.now().astimezone())) + 86_400
            await self._redis.set(keys[int(answer[1]) - 1], spent, nx=True, ex=ttl)
        raise RedisError("a budget could not be seeded")  # each round seeds one budget: a check has at most two

    def _key(self, kind: str, subject: str, period_key: str) -> str:
        return f"{self._prefix}budget:{subject}:{period_key}" if kind == "budget" else f"{self._prefix}{kind}:{subject}"

    # ------------------------------------------------------------------ Redis away and back

    def _skipping(self) -> bool:
        return self._down_until is not None and time.monotonic() < self._down_until

    def _went_down(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning("Redis is unreachable (%s): limits are counted in this process until it answers again",
                        exc or type(exc).__name__)
        self._down_until = time.monotonic() + RETRY_S

    def _miss(self, charges: Sequence[Charge]) -> None:
        for charge in charges:
            if charge.kind == "budget":
                key = self._key("budget", charge.subject, charge.period_key)
                self._missed[key] = self._missed.get(key, 0) + charge.amount

    async def _came_back(self) -> None:
        if self._down_until is None:
            return
        self._down_until = None
        missed, self._missed = self._missed, {}
        log.warning("Redis answers again: limits are counted in Redis (%d budgets given the spend counted meanwhile)",
                    len(missed))
        if missed:
            try:
                await self._pipeline.run(CHARGE, list(missed),
                                         [part for amount in missed.values() for part in ("budget", amount, 0)])
            except (RedisError, OSError) as exc:
                self._missed = missed
                self._went_down(exc)
