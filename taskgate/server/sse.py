"""Server-Sent Events shared by the three dialects: engine events in, frames on the socket.

`event_frames` is the one loop from engine events to frames: each dialect gives only its mapping
(`EventFrames`), and the frames one event makes leave in one write. `EventStream` sends them with
the headers proxies need, adds a comment heartbeat after `heartbeat_s` of silence (a comment is
the only keep-alive that neither SDK chokes on), and stops the producer when the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol, TypeVar

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from taskgate.engine.task import Failed, Finished
from taskgate.errors import TaskgateError
from taskgate.server.request_io import dumps

log = logging.getLogger("taskgate.api")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
HEARTBEAT = b": keepalive\n\n"
DONE = b"data: [DONE]\n\n"  # the end of a v3 or OpenAI stream
LAST_EVENTS = (Finished, Failed)  # an engine stream's last event is one of these
E = TypeVar("E")  # what a stream relays: engine events, or those of several choices (`ChoiceEvent`)
E_contra = TypeVar("E_contra", contravariant=True)


def data_frame(payload: Any) -> bytes:
    """`data: <single-line JSON>` plus the blank line that ends the event."""
    return b"data: " + dumps(payload) + b"\n\n"


def named_frame(event: str, payload: Any) -> bytes:
    """An `event:` line directly followed by its `data:` line, in one block (2.1.1 needs that)."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


class EventFrames(Protocol[E_contra]):
    """A dialect's stream format: the frames each engine event becomes, already encoded."""

    def frames(self, event: E_contra) -> list[bytes]:
        """The frames of one event; `Finished` and `Failed` end the stream, so theirs are the last."""
        ...

    def ended(self) -> list[bytes]:
        """The last frames when the events ran out without `Finished` or `Failed`."""
        ...


async def event_frames(events: AsyncGenerator[E, None], mapping: EventFrames[E | Failed],
                       head: Sequence[bytes] = ()) -> AsyncGenerator[bytes, None]:
    """The frames of a stream's events after `Started`, one write per event.

    The handler takes `Started` itself, so that errors before any output are plain HTTP errors.
    `head` is what the dialect makes of it (v2's span id, OpenAI's role chunk): it rides with the
    first write that has frames of its own, since a write of it alone would only delay the first
    delta. An error raised after the stream started ends it like `Failed`. Closing this generator
    closes `events`, which cancels the upstream request in the engine.
    """
    pending = list(head)
    try:
        async for event in events:
            frames = mapping.frames(event)
            if isinstance(event, LAST_EVENTS):
                break
            if frames:
                if pending:
                    frames = pending + frames
                    pending = []
                yield b"".join(frames)
        else:
            frames = mapping.ended()
    except TaskgateError as exc:
        frames = mapping.frames(Failed(exc))
    except Exception as exc:
        log.exception("engine stream failed after output started")
        frames = mapping.frames(Failed(exc))
    finally:
        await events.aclose()
    if last := pending + frames:
        yield b"".join(last)


class EventStream(Response):
    """An SSE response that writes each frame as it comes, with no queue between producer and socket.

    The frames are written by the request's own task. Beside it one small task, the guard, sends a
    heartbeat comment after `heartbeat_s` of silence and notices the client leaving even while the
    upstream is silent; it then cancels the writing, so the producer's cleanup (closing the
    upstream request, marking the span) runs at once.
    """

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncGenerator[bytes, None], heartbeat_s: float) -> None:
        self.frames = frames
        self.heartbeat_s = heartbeat_s
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        except OSError:  # the client left before the headers went out
            await self.frames.aclose()
            return
        writer = asyncio.current_task()
        assert writer is not None
        line = _Line(send, writer)
        guard = asyncio.create_task(line.guard(receive, self.heartbeat_s))
        try:
            async with contextlib.aclosing(self.frames):
                async for frame in self.frames:
                    await line.write(frame)
            await line.write(b"", more=False)
        except asyncio.CancelledError:
            # Ours (the client left) is undone; any other (the server stopping) goes on up.
            if not line.client_left or writer.uncancel() > 0:
                raise
        except (OSError, ClientDisconnect):
            pass  # the client left while a frame was being written
        finally:
            line.writing = False
            guard.cancel()


class _Line:
    """The connection to one SSE client, shared by the writing task and its guard."""

    def __init__(self, send: Send, writer: asyncio.Task[object]) -> None:
        self._send = send
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self.last_sent = self._loop.time()
        self.writing = True  # the writer only awaits inside its try block while this is set
        self.client_left = False

    async def write(self, chunk: bytes, more: bool = True) -> None:
        self.last_sent = self._loop.time()
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def guard(self, receive: Receive, heartbeat_s: float) -> None:
        """Heartbeats while the frames are silent; when the client leaves, stop the writer. A guard
        that fails cannot watch the line any more, so it stops the writer too rather than die unseen."""
        try:
            await self._watch(receive, heartbeat_s)
        except Exception:
            log.exception("the SSE guard failed; ending the stream")
            self._leave()

    async def _watch(self, receive: Receive, heartbeat_s: float) -> None:
        while True:
            try:
                async with asyncio.timeout_at(self.last_sent + heartbeat_s):
                    message = await receive()
            except TimeoutError:
                if self._loop.time() - self.last_sent >= heartbeat_s:
                    try:
                        await self.write(HEARTBEAT)
                    except (OSError, ClientDisconnect):
                        self._leave()
                        return
                continue
            if message["type"] == "http.disconnect":
                self._leave()
                return

    def _leave(self) -> None:
        self.client_left = True
        if self.writing:
            self._writer.cancel()


def sse_response(frames: AsyncGenerator[bytes, None], heartbeat_s: float) -> EventStream:
    return EventStream(frames, heartbeat_s)
