"""Server-Sent Events framing shared by the three dialects.

Each dialect turns engine events into already-encoded SSE frames; this module sends them with
the headers proxies need, adds a comment heartbeat after `heartbeat_s` of silence (a comment is
the only keep-alive that neither SDK chokes on), and stops the producer when the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from taskgate.api.http import dumps

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
HEARTBEAT = b": keepalive\n\n"


def data_frame(payload: Any) -> bytes:
    """`data: <single-line JSON>` plus the blank line that ends the event."""
    return b"data: " + dumps(payload) + b"\n\n"


def named_frame(event: str, payload: Any) -> bytes:
    """An `event:` line directly followed by its `data:` line, in one block (2.1.1 needs that)."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


class EventStream(Response):
    """An SSE response that writes each frame as it comes, with no queue between producer and socket.

    Beside the frames, two small tasks run for the life of the stream: a watchdog that sends a
    heartbeat comment after `heartbeat_s` of silence, and a listener that notices the client
    leaving even while the upstream is silent. When the client leaves, the frame producer is
    cancelled, so its cleanup (closing the upstream request, marking the span) runs at once.
    """

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[bytes, None], heartbeat_s: float) -> None:
        self.frames = frames
        self.heartbeat_s = heartbeat_s
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        last_sent = loop.time()

        async def body(chunk: bytes, more: bool = True) -> None:
            nonlocal last_sent
            last_sent = loop.time()
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

        async def produce() -> None:
            async with contextlib.aclosing(self.frames):
                async for frame in self.frames:
                    await body(frame)
            await body(b"", more=False)

        async def watchdog() -> None:
            while True:
                await asyncio.sleep(max(last_sent + self.heartbeat_s - loop.time(), 0.0))
                if loop.time() - last_sent >= self.heartbeat_s:
                    await body(HEARTBEAT)

        async def client_left() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        except OSError:  # the client left before the headers went out
            await self.frames.aclose()
            return
        producer = asyncio.create_task(produce())
        helpers = [asyncio.create_task(watchdog()), asyncio.create_task(client_left())]
        try:
            await asyncio.wait([producer, helpers[1]], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, *helpers):
                task.cancel()
            results = await asyncio.gather(producer, *helpers, return_exceptions=True)
        failure = results[0]
        if isinstance(failure, Exception) and not isinstance(failure, OSError | ClientDisconnect):
            raise failure  # a bug, not a client that left: let the server log it


def sse_response(frames: AsyncGenerator[bytes, None], heartbeat_s: float) -> EventStream:
    return EventStream(frames, heartbeat_s)
