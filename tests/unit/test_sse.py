"""`EventStream`, the SSE response every dialect shares, driven as an ASGI app by a scripted client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from taskgate.server.sse import HEARTBEAT, EventStream

pytestmark = pytest.mark.asyncio(loop_scope="session")
SCOPE = {"type": "http", "method": "POST", "path": "/v2/call/stream", "headers": []}


class Client:
    """Records what the response sends; `leave()` makes the next receive() say the client went away."""

    def __init__(self, fail_sends_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self._left = asyncio.Event()
        self._fail_after = fail_sends_after

    def leave(self) -> None:
        self._left.set()

    async def receive(self) -> dict[str, Any]:
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self._fail_after is not None and len(self.sent) >= self._fail_after:
            raise OSError("connection reset by peer")
        self.sent.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def silent_after_first(closed: asyncio.Event | None = None) -> AsyncGenerator[bytes, None]:
    """One frame, then an upstream that says nothing more; `closed` is set when it is closed."""
    try:
        yield b"data: first\n\n"
        await asyncio.sleep(3600)
        yield b"data: never\n\n"
    finally:
        if closed is not None:
            closed.set()


async def test_frames_in_order_then_the_end_of_the_body() -> None:
    async def frames() -> AsyncGenerator[bytes, None]:
        for n in range(3):
            yield f"data: {n}\n\n".encode()

    client = Client()
    await EventStream(frames(), heartbeat_s=60)(SCOPE, client.receive, client.send)
    start = client.sent[0]
    assert start["status"] == 200 and (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert client.bodies() == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
    assert client.sent[-1]["more_body"] is False


async def test_a_heartbeat_comment_during_silence() -> None:
    async def slow() -> AsyncGenerator[bytes, None]:
        await asyncio.sleep(0.35)
        yield b"data: late\n\n"

    client = Client()
    await EventStream(slow(), heartbeat_s=0.1)(SCOPE, client.receive, client.send)
    bodies = client.bodies()
    assert bodies.count(HEARTBEAT) >= 2 and bodies[-2:] == [b"data: late\n\n", b""]


async def test_a_client_leaving_during_upstream_silence_stops_the_producer_at_once() -> None:
    closed = asyncio.Event()

    async def serve_then_carry_on() -> int:
        """As the server does: after the response, the same task goes on (keep-alive, the next
        request), so the cancellation used to stop the writer must not linger on it."""
        await EventStream(silent_after_first(closed), heartbeat_s=60)(SCOPE, client.receive, client.send)
        await asyncio.sleep(0.01)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    client = Client()
    response = asyncio.create_task(serve_then_carry_on())
    await asyncio.sleep(0.05)
    client.leave()
    assert await asyncio.wait_for(response, timeout=5) == 0
    assert closed.is_set() and b"data: never\n\n" not in client.bodies()


async def test_a_send_that_fails_because_the_client_left_ends_quietly() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"data: x\n\n"
        finally:
            closed.set()

    client = Client(fail_sends_after=3)
    await asyncio.wait_for(EventStream(endless(), heartbeat_s=60)(SCOPE, client.receive, client.send), timeout=5)
    assert closed.is_set() and len(client.sent) == 3


async def test_a_client_gone_before_the_headers_ends_quietly() -> None:
    """A server that raises OSError on send once the client has gone (ASGI 2.4) may do so for the
    very first message too: that is a client that left, not a server error, and the frames are closed."""

    async def frames() -> AsyncGenerator[bytes, None]:
        yield b"data: x\n\n"

    stream = frames()
    client = Client(fail_sends_after=0)
    await asyncio.wait_for(EventStream(stream, heartbeat_s=60)(SCOPE, client.receive, client.send), timeout=5)
    assert client.sent == [] and stream.ag_frame is None  # closed


async def test_a_heartbeat_that_finds_the_client_gone_stops_the_producer() -> None:
    """The client vanished without a disconnect message; the first heartbeat's failed write is how
    the server learns it, and the silent producer must be stopped, not left waiting for the upstream."""
    closed = asyncio.Event()

    client = Client(fail_sends_after=2)  # the headers and the first frame go out; the heartbeat fails
    await asyncio.wait_for(EventStream(silent_after_first(closed), heartbeat_s=0.1)(SCOPE, client.receive, client.send),
                           timeout=5)
    assert closed.is_set() and client.bodies() == [b"data: first\n\n"]


async def test_a_server_stopping_is_not_mistaken_for_a_client_leaving() -> None:
    client = Client()
    stream = EventStream(silent_after_first(), heartbeat_s=60)
    response = asyncio.create_task(stream(SCOPE, client.receive, client.send))
    await asyncio.sleep(0.05)
    response.cancel()
    with pytest.raises(asyncio.CancelledError):
        await response
