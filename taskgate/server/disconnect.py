"""A client that leaves cancels its work: the upstream request, the schema re-asks, the fallbacks.

A call can run for minutes upstream. Without this, a client that gives up leaves its call running
to the end, every re-ask and fallback still made and paid for. `until_client_leaves` runs the
handler's work and cancels it when the client goes (the engine records the span as cancelled and
closes the upstream request); the handler then raises ClientDisconnect, which `guarded` logs as 499.

Under `taskgate serve` the protocol itself reports the lost connection (`server.protocol`): the
handler only leaves a callback in its scope, which costs a dict entry. Under another ASGI server,
a task waits for `http.disconnect` beside the work: once the body has been read, `receive()` has
nothing else to give. That task costs about 20 µs a request (a task, and its cancellation), which
is why `serve` does without it.

Start it only after the body is read (the task would take body messages otherwise), and only around
the work before the response: once an SSE response starts, its own guard watches the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from taskgate.errors import ShuttingDownError
from taskgate.server.protocol import ON_CLIENT_LEFT_KEY, REPORTS_DEPARTURE_KEY

T = TypeVar("T")


async def until_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; if the client disconnects first, cancel it and raise ClientDisconnect.

    The only other canceller of a request's task is the server, once its shutdown grace period is
    over: the work is stopped all the same, and the client still waiting gets a 503 (which it may
    retry elsewhere) instead of the server's bare 500.
    """
    handler = asyncio.current_task()
    assert handler is not None
    scope = request.scope
    watch: _Watch | _Report
    if scope.get(REPORTS_DEPARTURE_KEY):
        watch = _Report(handler)
        scope[ON_CLIENT_LEFT_KEY] = watch.client_leaving
    else:
        watch = _Watch(request.receive, handler)
    try:
        return await work
    except asyncio.CancelledError:
        if handler.cancelling() != 1:
            raise  # not a cancellation of this task, or more than one: not ours to answer for
        handler.uncancel()
        if watch.client_left:
            raise ClientDisconnect() from None
        raise ShuttingDownError("the server stopped before the call finished; try again") from None
    finally:
        watch.stop()
        scope.pop(ON_CLIENT_LEFT_KEY, None)


class _Report:
    """The protocol's word that the connection was lost cancels the handler, unless stopped first."""

    __slots__ = ("_handler", "client_left", "stopped")

    def __init__(self, handler: asyncio.Task[Any]) -> None:
        self._handler = handler
        self.client_left = False
        self.stopped = False

    def client_leaving(self) -> None:
        if not self.stopped:
            self.client_left = True
            self._handler.cancel()

    def stop(self) -> None:
        self.stopped = True


class _Watch:
    """One pending `receive()`; a disconnect it brings cancels the handler, unless stopped first."""

    __slots__ = ("_handler", "_pending", "_receive", "client_left", "stopped")

    def __init__(self, receive: Receive, handler: asyncio.Task[Any]) -> None:
        self._receive = receive
        self._handler = handler
        self.client_left = False
        self.stopped = False
        self._pending = self._listen()

    def _listen(self) -> asyncio.Future[Any]:
        pending = asyncio.ensure_future(self._receive())
        pending.add_done_callback(self._on_message)
        return pending

    def _on_message(self, pending: asyncio.Future[Any]) -> None:
        if pending.cancelled() or pending.exception() is not None or self.stopped:
            return  # stopped, or a server that cannot say: the work simply runs to its end
        if pending.result().get("type") == "http.disconnect":
            self.client_left = True
            self._handler.cancel()
        else:
            self._pending = self._listen()  # not a disconnect (nothing more to read): keep waiting

    def stop(self) -> None:
        """Stop watching; a message already on its way is ignored (`stopped`)."""
        self.stopped = True
        self._pending.cancel()
