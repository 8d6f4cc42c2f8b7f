"""Background chores that run every few seconds while the server is up, and once more at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger("taskgate.periodic")


@contextlib.asynccontextmanager
async def every(interval_s: float, chore: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run `chore` every `interval_s` seconds inside the block, and a last time on leaving it.

    A failing chore is logged and tried again next time; it never stops the server.
    """

    async def safely() -> None:
        try:
            await chore()
        except Exception:
            log.exception("background chore %s failed", getattr(chore, "__qualname__", chore))

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await safely()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await safely()
