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

from starlette.responses import StreamingResponse

from taskgate.api.http import dumps

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
HEARTBEAT = b": keepalive\n\n"
_END = object()


def data_frame(payload: Any) -> bytes:
    """`data: <single-line JSON>` plus the blank line that ends the event."""
    return b"data: " + dumps(payload) + b"\n\n"


def named_frame(event: str, payload: Any) -> bytes:
    """An `event:` line directly followed by its `data:` line, in one block (2.1.1 needs that)."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


async def with_heartbeat(frames: AsyncGenerator[bytes, None], heartbeat_s: float) -> AsyncGenerator[bytes, None]:
    """Yield `frames`, inserting a heartbeat comment whenever the producer is silent too long.

    The producer runs in its own task feeding a queue and a watchdog task adds a heartbeat after
    `heartbeat_s` of silence, so no per-frame timer is needed. Frames that are already waiting
    are sent together, in one write. When the consumer stops (client disconnect), the producer
    is cancelled and its cleanup (closing the upstream request, marking the span) runs.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
    loop = asyncio.get_running_loop()
    last_put = loop.time()

    async def pump() -> None:
        nonlocal last_put
        try:
            async for frame in frames:
                last_put = loop.time()
                await queue.put(frame)
        except Exception as exc:  # surfaced to the consumer below
            await queue.put(exc)
        # Not in a `finally`: once cancelled, nobody reads the queue, so a put into a full one would
        # never return and the consumer's cleanup would wait on this task forever.
        await queue.put(_END)

    async def watchdog() -> None:
        nonlocal last_put
        while True:
            await asyncio.sleep(max(last_put + heartbeat_s - loop.time(), 0.0))
            if loop.time() - last_put >= heartbeat_s:
                last_put = loop.time()
                await queue.put(HEARTBEAT)

    producer = asyncio.create_task(pump())
    heartbeat = asyncio.create_task(watchdog())
    try:
        ending: Any = None
        while ending is None:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            ready = []
            for item in batch:
                if item is _END or isinstance(item, Exception):
                    ending = item
                    break
                ready.append(item)
            if ready:
                yield b"".join(ready)
        if isinstance(ending, Exception):
            raise ending
    finally:
        for task in (heartbeat, producer):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await frames.aclose()


def sse_response(frames: AsyncGenerator[bytes, None], heartbeat_s: float) -> StreamingResponse:
    return StreamingResponse(
        with_heartbeat(frames, heartbeat_s), media_type="text/event-stream", headers=SSE_HEADERS
    )
