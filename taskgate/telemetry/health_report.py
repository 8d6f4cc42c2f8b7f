"""What `/health` and `/ready` say, for load balancers and orchestrators.

`/health` is liveness: always 200 while the process serves, `ok`, or `degraded` while the store
is failing (calls still answer; their spans wait in the journal). `/ready` says whether this
replica can take calls: 503 only when it cannot (the journal has no room, so calls would be refused).
A failing store alone leaves a replica ready: every replica shares the store, and each keeps
answering and journaling; taking them all out of rotation would turn a degraded service into an outage.
So does a failing Redis (`TASKGATE_REDIS_URL`), which `/ready` reports as `redis` when one is
configured: every replica then falls back to what it can do alone (`taskgate.replicas`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from taskgate.telemetry.journal import SpanJournal
from taskgate.telemetry.store_health import StoreHealth


class HealthReport:
    def __init__(self, store: StoreHealth, journal: SpanJournal,
                 redis_state: Callable[[], Awaitable[str]] | None = None) -> None:
        """`redis_state` says `ok` or `down`, when Redis is configured."""
        self._store = store
        self._journal = journal
        self._redis_state = redis_state

    async def liveness(self) -> dict[str, Any]:
        if await self._store.healthy():
            return {"status": "ok"}
        return {"status": "degraded", "store": "failing", "unstored_spans": self._journal.unstored()}

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether calls are taken, and the state of each part."""
        store_ok = await self._store.healthy()
        accepting = self._journal.accepting()
        parts: dict[str, Any] = {
            "status": "ready" if accepting else "not_ready",
            "store": "ok" if store_ok else "failing",
            "journal": {"state": "ok" if accepting else "full", "unstored_spans": self._journal.unstored(),
                        "bytes": self._journal.size(), "max_bytes": self._journal.max_bytes,
                        "failed_appends": self._journal.failed_appends},
        }
        if self._redis_state is not None:
            parts["redis"] = await self._redis_state()
        return accepting, parts
