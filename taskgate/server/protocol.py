"""The HTTP protocol `taskgate serve` runs: uvicorn's httptools protocol, plus two things it lacks.

A response of known length leaves with its status line, headers and body in one send.
uvicorn writes the head of a response the moment the app sends `http.response.start`, and the body
when it comes, so a JSON answer leaves as two TCP segments. The client reads each one separately,
and each can cost it a wake-up on another CPU before it has the body it waits for. Here the head
of a response that declares its length waits for the body and goes out with it, or alone at the
next pass of the event loop if the body has not come by then. A stream's head (chunked: no
length) goes out at once, so the client can read it while the first frames are still upstream.

A request must arrive in bounded time and size. uvicorn (0.55) and httptools put no limit on a
request head's size and no timeout on its arrival (nor on a new connection that sends nothing),
and wait for a body for ever. Here a head over `max_head_bytes` gets a 431 and one slower than
`head_timeout_s` a 408, and the connection is closed once the client has read that answer; a
body that pauses longer than `body_idle_timeout_s`, or takes longer than `body_timeout_s` in
all, makes the app's `read_body` answer 408. A request that arrives in one read, as nearly all
do, arms no timer: the checks cost a few attribute reads per read, and a timer is set only for a
request still incomplete at the end of a read (and once per connection, for its first request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from taskgate.errors import BadRequestError, RequestHeaderFieldsTooLargeError, RequestTimeoutError, TaskgateError

log = logging.getLogger("taskgate.api")

# Set in a request's scope when its body stalled; `read_body` then answers 408 with this reason.
BODY_TIMEOUT_KEY = "taskgate.body_timeout"
# Set (True) in every request's scope by this protocol: it calls ON_CLIENT_LEFT_KEY's callable, when
# a handler put one in the scope, if the connection is lost before the response is complete. A
# handler then needs no task of its own listening for `http.disconnect` (`server.disconnect`).
REPORTS_DEPARTURE_KEY = "taskgate.reports_departure"
ON_CLIENT_LEFT_KEY = "taskgate.on_client_left"
LINGER_S = 2.0  # how long a refused request's connection stays to drop what the client still sends
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How large a request head may be and how long a request may take to arrive (the operator's
    settings, see `taskgate.config`)."""

    max_head_bytes: int = 64 * 1024
    head_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0
    body_timeout_s: float = 300.0


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
    """uvicorn's httptools protocol, giving each request's response a `HeadHoldingTransport` and
    bounding how large and slow a request may be.

    Only the response's own writes go through the holding transport; the connection (reading,
    flow control, closing an idle keep-alive) keeps the plain transport.
    """

    limits = ReadLimits()  # the defaults; `protocol_with` makes a subclass holding the operator's settings

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0  # of the request head being received; 0 between requests
        self._in_body = False  # from a request's head to the end of its body
        self._body_started: float | None = None
        self._body_read_at = 0.0
        self._waited_on_us = False  # at the body timer's last check: reading paused, or a 100 not yet sent
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False  # answered and closing: what still arrives is dropped
        super().connection_made(transport)
        self._arm(self.limits.head_timeout_s)  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            on_client_left: Callable[[], None] | None = cycle.scope.get(ON_CLIENT_LEFT_KEY)  # type: ignore[assignment]
            if on_client_left is not None:
                on_client_left()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._in_body:
            self._body_read_at = self.loop.time()
        else:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes and not self._head_ends_in(data):
                self._refuse(RequestHeaderFieldsTooLargeError(
                    f"the request head is over the limit of {self.limits.max_head_bytes} bytes"))
                return
        super().data_received(data)
        if self._timer is None and (self._in_body or self._head_bytes):
            self._start_clock()

    def on_headers_complete(self) -> None:
        self._head_bytes = 0
        if self._timer is not None:
            self._disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # a new request, not an upgrade
            cycle.transport = HeadHoldingTransport(self.transport, self.loop, cycle)
            cycle.scope[REPORTS_DEPARTURE_KEY] = True  # type: ignore[literal-required]
            self._in_body = True
            self._body_started = None

    def on_message_complete(self) -> None:
        # Here, not from uvicorn's `more_body`: uvicorn leaves that set when the response went out
        # before the body was all read, and the bytes after the body are the next request's head.
        self._in_body = False
        if self._timer is not None:
            self._disarm()
        super().on_message_complete()

    def _start_clock(self) -> None:
        """A request still incomplete at the end of a read is on the clock from now on."""
        if self.transport.is_closing():
            return
        if not self._in_body:
            self._arm(self.limits.head_timeout_s)
        elif self._body_started is None:
            self._body_started = self._body_read_at = self.loop.time()
            self._waited_on_us = False
            self._arm(self.limits.body_idle_timeout_s)

    def _head_ends_in(self, data: bytes) -> bool:
        """Whether the head ends in `data` within the size allowed: one read may carry a small head
        and the start of a large body, and only the head counts."""
        room = self.limits.max_head_bytes - (self._head_bytes - len(data))
        return room > 0 and data.find(_HEAD_END, 0, room + len(_HEAD_END)) != -1

    def _arm(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._in_body:
            self._check_body()
        elif self._responding():
            self._arm(self.limits.head_timeout_s)  # the next request's head waits for this response
        else:
            self._refuse(RequestTimeoutError(
                f"the request head did not arrive within {self.limits.head_timeout_s:g} s"))

    def _check_body(self) -> None:
        """Wait on while the body keeps coming (or the app is not reading yet); otherwise tell the
        app, whose `read_body` answers 408 and closes the connection, or, when the app has already
        answered without reading the whole body, close the connection."""
        cycle = self.cycle
        now = self.loop.time()
        waiting_on_us = self.flow.read_paused or getattr(cycle, "waiting_for_100_continue", False)
        if waiting_on_us or self._waited_on_us:
            self._body_read_at = now  # the client waits (or waited until just now) on us, not we on it
        self._waited_on_us = waiting_on_us
        started = self._body_started if self._body_started is not None else now
        idle_end = self._body_read_at + self.limits.body_idle_timeout_s
        deadline = started + self.limits.body_timeout_s
        if now < min(idle_end, deadline):
            self._arm(min(idle_end, deadline) - now)
            return
        if cycle.response_started:  # nobody reads the rest, and a 408 can no longer be sent
            self.transport.close()
            return
        if now >= deadline:
            reason = f"the request body did not arrive within {self.limits.body_timeout_s:g} s"
        else:
            reason = f"the request body stalled for over {self.limits.body_idle_timeout_s:g} s"
        cycle.scope[BODY_TIMEOUT_KEY] = reason  # type: ignore[literal-required]
        cycle.message_event.set()

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse (uvicorn has logged it): the JSON error body, not text.
        The head may have been fine and the body not (a chunk size that is not hex, a transfer
        coding other than chunked): the app is then already on the request, and the 400 answers it."""
        self._answer_and_close(BadRequestError(msg))

    def _refuse(self, error: TaskgateError) -> None:
        log.warning("refused a request from %s: %s", self.client, error.detail)
        self._answer_and_close(error)

    def _answer_and_close(self, error: TaskgateError) -> None:
        """Answer a request that cannot be read with `error`, and close the connection (see
        `_linger`). When the answer may not be written, the connection is only closed."""
        self._disarm()
        if not self._may_answer():
            self.transport.close()
            return
        cycle = self.cycle
        if self._in_body and cycle is not None:
            # The app is on this request: to it, the client is gone from now on, so that nothing
            # it sends follows this answer (uvicorn would only learn it from the close, later).
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.write(raw_error_response(error))
        self._linger()

    def _may_answer(self) -> bool:
        """Whether an answer written now answers the request that failed: between requests, once
        the last response is all out (before, it would land inside it); within a body, until the
        app starts answering that request itself (after, the client has its answer)."""
        cycle = self.cycle
        if cycle is None:
            return True
        return not cycle.response_started if self._in_body else cycle.response_complete

    def _linger(self) -> None:
        """Close once the client has read the answer just written. A close with the client's bytes
        still unread resets the connection, and a reset makes the client's system drop the answer
        it has not read yet (a client sending a megabyte head reads only when it has sent it all).
        So the answer is followed by the end of our stream, what still arrives is dropped, and the
        connection closes when the client closes its end, or after LINGER_S."""
        self._lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._timer = self.loop.call_later(LINGER_S, self.transport.close)


def raw_error_response(error: TaskgateError) -> bytes:
    """A whole HTTP/1.1 response carrying `error`'s JSON body, for a request that never reached
    the app; the connection closes after it."""
    body = orjson.dumps(error.body())
    head = (f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def protocol_with(read_limits: ReadLimits) -> type[HeadWithBodyProtocol]:
    """The protocol class for uvicorn's `http` option, holding the operator's limits."""

    class ConfiguredProtocol(HeadWithBodyProtocol):
        limits = read_limits

    return ConfiguredProtocol
