"""Whether the store answers, as `/health` and `/ready` report it and as the span writer needs it.

Span batches tell it on every write (`succeeded`, `failed`); between writes, or while they fail, a
probe (`SELECT 1`) with a short timeout asks again. A result is trusted for FRESH_S, so a load
balancer polling every replica many times a second costs the store one probe a second, and only
one probe runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from taskgate.store.base import Store

log = logging.getLogger("taskgate.health")

FRESH_S = 1.0
PROBE_TIMEOUT_S = 2.0


class StoreHealth:
    def __init__(self, store: Store, fresh_s: float = FRESH_S, probe_timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._store = store
        self._fresh_s = fresh_s
        self._probe_timeout_s = probe_timeout_s
        self._ok = True
        self._checked = time.monotonic()
        self._probing = asyncio.Lock()

    def succeeded(self) -> None:
        """The store just took a write."""
        self._note(True)

    def failed(self) -> None:
        """A write to the store just failed."""
        self._note(False)

    async def healthy(self) -> bool:
        """Whether the store answered lately, probing it when the last word is older than FRESH_S."""
        if time.monotonic() - self._checked < self._fresh_s:
            return self._ok
        async with self._probing:
            if time.monotonic() - self._checked < self._fresh_s:  # another request probed meanwhile
                return self._ok
            return await self.reachable()

    async def reachable(self) -> bool:
        """Probe the store now."""
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                await self._store.ping()
        except Exception as exc:
            log.debug("store probe failed: %s", exc)
            self._note(False)
            return False
        self._note(True)
        return True

    def _note(self, ok: bool) -> None:
        if ok != self._ok:
            log.warning("the store is %s", "reachable again" if ok else "failing: spans wait in the journal")
        self._ok = ok
        self._checked = time.monotonic()
