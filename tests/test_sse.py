"""`with_heartbeat`, the SSE sender every dialect shares: its cleanup must always finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from taskgate.api.sse import with_heartbeat

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_leaving_while_the_producer_waits_for_room_still_closes_the_frames() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"data: x\n\n"
        finally:
            closed.set()

    stream = with_heartbeat(endless(), heartbeat_s=60)
    await anext(stream)  # meanwhile the producer fills the queue and waits for room in it
    closing = asyncio.create_task(stream.aclose())
    done, _ = await asyncio.wait({closing}, timeout=5)
    if not done:  # hung: cancel it so the session's loop is left clean, then fail
        closing.cancel()
        await asyncio.wait({closing})
    assert done and closed.is_set()
