"""A response of known length leaves with its status line, headers and body in one send.

uvicorn writes the head of a response the moment the app sends `http.response.start`, and the body
when it comes, so a JSON answer leaves as two TCP segments. The client reads each one separately,
and each can cost it a wake-up on another CPU before it has the body it waits for. Here the head
of a response that declares its length waits for the body and goes out with it, or alone at the
next pass of the event loop if the body has not come by then. A stream's head (chunked: no
length) goes out at once, so the client can read it while the first frames are still upstream.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class HeadHoldingTransport(asyncio.Transport):
    """One response's view of the connection: a head with a length waits for the next write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 cycle: RequestResponseCycle) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        # The cycle holds this transport, so this reference makes a cycle that only the garbage
        # collector could free; it is dropped as soon as the head is seen, and the pair then goes
        # with its last reference (per request: no collector pass for it, no pause).
        self._cycle: RequestResponseCycle | None = cycle
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._transport.writelines((held, data))  # one send (uvloop: writev), no copy of the body
            return
        # uvicorn writes the head right after setting `response_started`, and sets `chunked_encoding`
        # (False: a length was declared) before. Read with getattr: should a later uvicorn rename
        # them, nothing is held and every write goes straight out, as without this class.
        cycle = self._cycle
        if cycle is not None and getattr(cycle, "response_started", False):
            self._cycle = None
            if getattr(cycle, "chunked_encoding", None) is False:
                self._held = bytes(data)
                self._loop.call_soon(self._release)
                return
        self._transport.write(data)

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._cycle = None
        self._release()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class HeadWithBodyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, giving each request's response a `HeadHoldingTransport`.

    Only the response's own writes go through it; the connection (reading, flow control, closing
    an idle keep-alive) keeps the plain transport.
    """

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # a new request, not an upgrade
            cycle.transport = HeadHoldingTransport(self.transport, self.loop, cycle)
