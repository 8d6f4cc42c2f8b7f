"""An ASGI app driven in process: its lifespan, and an httpx transport that streams its responses.

`taskgate call` with no server runs the server's own app inside the command and sends it the very
requests it would send a server, so both modes share one client. httpx's own `ASGITransport` holds
a response back until the app has finished it, which would turn a stream into one late burst; this
transport hands each body chunk on as the app sends it. Closing the response (the command is done,
or Ctrl-C cancelled it) tells the app its client left, as a dropped connection would, and waits for
the app to wind down, so a call that was cut short is recorded as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskgate.commands.console import CommandError

WIND_DOWN_S = 10.0  # how long a request the client left may take to end before it is cancelled
CLIENT = ("127.0.0.1", 0)
SERVER = ("127.0.0.1", 80)


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp, where: str) -> AsyncIterator[None]:
    """The app started (store open, recorder running) inside the block and shut down after it, which
    writes every span it recorded before the block is left."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    replies: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.create_task(_run(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                    inbox.get, replies.put))
    try:
        await inbox.put({"type": "lifespan.startup"})
        started = await _reply(task, replies)
        if started["type"] != "lifespan.startup.complete":
            raise CommandError(f"cannot start Taskgate on {where}: {_cause(started)}")
        try:
            yield
        finally:
            await inbox.put({"type": "lifespan.shutdown"})
            stopped = await _reply(task, replies)
            if stopped["type"] != "lifespan.shutdown.complete":
                raise CommandError(f"Taskgate on {where} did not shut down cleanly: {_cause(stopped)}")
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # already reported above, in the words of the lifespan message it sent


async def _run(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await app(scope, receive, send)


def _cause(message: Message) -> str:
    """The failure a lifespan message reports: Starlette sends the whole traceback; its last line
    (`ValueError: ...`) is what the person can act on."""
    lines = str(message.get("message") or "").strip().splitlines()
    return lines[-1] if lines else "the app failed"


async def _reply(task: asyncio.Task[None], replies: asyncio.Queue[Message]) -> Message:
    """The app's next lifespan message; an app that ended without one failed to start or stop."""
    waiting = asyncio.ensure_future(replies.get())
    try:
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiting.done():
            waiting.cancel()  # Ctrl-C while waiting, or the app ended: no getter is left behind
    if not waiting.cancelled():
        return waiting.result()
    failure = task.exception() if not task.cancelled() else None
    return {"type": "lifespan.failed", "message": str(failure) if failure else "the app ended"}


class AppTransport(httpx.AsyncBaseTransport):
    """Each request runs the app as a task of its own; its response streams out of a queue."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _Exchange(await request.aread())
        path, _, _ = request.url.raw_path.partition(b"?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
            "scheme": "http", "path": request.url.path, "raw_path": path, "root_path": "",
            "query_string": request.url.query, "client": CLIENT, "server": SERVER,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
        }
        task = asyncio.create_task(_run(self._app, scope, exchange.receive, exchange.send))
        exchange.follow(task)
        try:
            status, headers = await exchange.head(task)
        except BaseException:
            await exchange.aclose()
            raise
        return httpx.Response(status, headers=headers, stream=exchange, request=request)


class _Exchange(httpx.AsyncByteStream):
    """One request's messages both ways: the body in, the response head and chunks out."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self._started = asyncio.Event()
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._left = asyncio.Event()  # the client closed the response
        self._task: asyncio.Task[None] | None = None

    def follow(self, task: asyncio.Task[None]) -> None:
        self._task = task
        task.add_done_callback(self._ended)

    async def receive(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._left.wait()  # nothing more to read until the client goes
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self._left.is_set():
            return  # as a server drops what is sent to a client that has gone
        if message["type"] == "http.response.start":
            self._status = int(message["status"])
            self._headers = list(message.get("headers", []))
            self._started.set()
        elif message["type"] == "http.response.body":
            if body := message.get("body", b""):
                self._chunks.put_nowait(bytes(body))
            if not message.get("more_body", False):
                self._chunks.put_nowait(None)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """Whatever the app did not finish ends the response: an error mid-body breaks it off."""
        failure = None if task.cancelled() else task.exception()
        self._chunks.put_nowait(httpx.RemoteProtocolError(f"the response broke off: {failure}") if failure
                                else None)
        self._started.set()

    async def head(self, task: asyncio.Task[None]) -> tuple[int, list[tuple[bytes, bytes]]]:
        await self._started.wait()
        if not self._status:  # the app ended without answering: a bug, shown as such
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure
            raise httpx.RemoteProtocolError("the app ended without a response")
        return self._status, self._headers

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    async def aclose(self) -> None:
        """The client is done with the response: the app is told it left, and given time to finish."""
        self._left.set()
        task = self._task
        if task is None or task.done():
            return
        _, pending = await asyncio.wait({task}, timeout=WIND_DOWN_S)
        if pending:
            task.cancel()
            await asyncio.wait({task})

