"""The usage totals of keys and projects, per UTC day and month, kept in the store.

Every counted request and charged call is added here in memory and written in a batch (each
`flush`, on the span flush interval, and at shutdown), added to the stored totals in place so
replicas never overwrite each other. Budgets are counted from these totals after a restart, and
usage is read from them; a reader sees the stored totals plus what waits here, under one lock with
the writer, so nothing is counted twice or missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from taskgate.store.base import KeyStore
from taskgate.store.key_records import UsageDelta, UsageTotals

log = logging.getLogger("taskgate.limits")
Row = tuple[str, str]  # (subject, period key)


class UsageLedger:
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys
        self._pending: dict[Row, list[int]] = {}  # requests, tokens, nano-USD
        self._lock = asyncio.Lock()

    def add(self, subjects: Iterable[str], period_keys: Iterable[str], *, requests: int = 0, tokens: int = 0,
            cost_nano: int = 0) -> None:
        periods = tuple(period_keys)
        for subject in subjects:
            for period in periods:
                totals = self._pending.get((subject, period))
                if totals is None:
                    self._pending[(subject, period)] = [requests, tokens, cost_nano]
                else:
                    totals[0] += requests
                    totals[1] += tokens
                    totals[2] += cost_nano

    async def flush(self) -> None:
        """Write what waits. A failed write keeps it for the next flush (the store may be back)."""
        if not self._pending:
            return
        async with self._lock:
            batch, self._pending = self._pending, {}
            try:
                await self._keys.add_usage([UsageDelta(subject, period, *totals)
                                            for (subject, period), totals in batch.items()])
            except Exception:
                log.exception("usage totals could not be written; kept for the next flush")
                for row, totals in batch.items():
                    self._merge(row, totals)

    async def totals(self, subjects: Iterable[str], period_keys: Iterable[str]) -> dict[Row, UsageTotals]:
        """Stored totals plus what waits here, for each (subject, period) asked."""
        wanted_subjects, wanted_periods = list(subjects), list(period_keys)
        async with self._lock:
            stored = await self._keys.usage(wanted_subjects, wanted_periods)
            found = {}
            for subject in wanted_subjects:
                for period in wanted_periods:
                    base = stored.get((subject, period), UsageTotals())
                    waiting = self._pending.get((subject, period), [0, 0, 0])
                    found[(subject, period)] = UsageTotals(base.requests + waiting[0], base.tokens + waiting[1],
                                                           base.cost_nano_usd + waiting[2])
            return found

    async def spent(self, subject: str, period_key: str) -> int:
        """Nano-USD the subject spent in the period: what a budget is seeded with."""
        return (await self.totals([subject], [period_key]))[(subject, period_key)].cost_nano_usd

    def _merge(self, row: Row, totals: list[int]) -> None:
        held = self._pending.setdefault(row, [0, 0, 0])
        for index, value in enumerate(totals):
            held[index] += value
