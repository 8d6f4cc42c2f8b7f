"""A bare SSE upstream for wire-level tests: it answers with exactly the bytes a test gives it.

The fake provider speaks whole, well-formed streams; adapter tests also need read boundaries they
choose: everything in one write (one read on the other side), a lead-in and then one write, or
awkward small pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

LEAD_PAUSE_S = 0.05  # long enough for the client to read the lead-in on its own


@contextlib.asynccontextmanager
async def raw_sse_upstream(path: str, body: list[bytes], piece: int | None = None,
                           lead: int = 0) -> AsyncIterator[str]:
    """Serve POST `path` on 127.0.0.1 with the bytes in `body` (read when a request comes, so a test
    may fill it after start-up): the first `lead` items alone, then after a pause the rest, in one
    write or in writes of `piece` bytes. Yields the base URL."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if lead:
            await response.write(b"".join(body[:lead]))
            await asyncio.sleep(LEAD_PAUSE_S)
        data = b"".join(body[lead:])
        size = piece or len(data) or 1
        for start in range(0, len(data), size):
            await response.write(data[start:start + size])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(path, answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
