"""The process's one Redis connection pool, and a breaker that keeps a dead Redis off the request path.

Every user (the shared cache, change notices, span mirror, and the rate-limit counters) goes through
one `RedisLink`: one pool, one key prefix, one view of whether Redis is up. Redis is an accelerator
here, never a dependency of an answer, so a failing command marks the link down for `COOLDOWN_S`:
meanwhile `usable` is false and callers take their local fallback without waiting on a connect
timeout per request. The first command after the pause probes Redis again; its success brings the
link back, and a warning is logged on each change of state (never once per request).
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("taskgate.redis")

CONNECT_TIMEOUT_S = 0.25  # a loopback or same-zone Redis connects in well under a millisecond
COMMAND_TIMEOUT_S = 0.5  # then a call stops waiting and takes its fallback
COOLDOWN_S = 1.0  # after a failure, how long Redis is left alone before it is tried again
MAX_CONNECTIONS = 64


class RedisLink:
    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=COMMAND_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0), max_connections=MAX_CONNECTIONS, health_check_interval=0)
        self._down_until = 0.0
        self._down = False

    def key(self, *parts: str) -> str:
        """A key or channel name of this deployment: the prefix, then `parts` joined by ':'."""
        return self.prefix + ":".join(parts)

    @property
    def usable(self) -> bool:
        """False while Redis is in its cooldown after a failure: use the local fallback instead."""
        return not self._down or time.monotonic() >= self._down_until

    @property
    def down(self) -> bool:
        """Whether the last command failed (for readiness reports)."""
        return self._down

    def succeeded(self) -> None:
        if self._down:
            self._down = False
            log.warning("Redis answers again: shared cache, change notices and span mirror are back in use")

    def failed(self, what: str, exc: BaseException) -> None:
        """Note a failed command; the first failure of an outage is logged with its cause."""
        self._down_until = time.monotonic() + COOLDOWN_S
        if not self._down:
            self._down = True
            log.warning("Redis failed (%s: %s): falling back to this process and the store until it answers",
                        what, exc)

    async def ping(self) -> bool:
        """Whether Redis answers now (updates the link's state)."""
        try:
            await self.client.ping()
        except (redis.RedisError, OSError) as exc:
            self.failed("ping", exc)
            return False
        self.succeeded()
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
