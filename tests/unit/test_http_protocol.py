"""The server protocol: a response of known length leaves in one write, a stream's head at once.

uvicorn's own protocol code runs here, fed raw request bytes, with a transport that records what it
is asked to write: the head-holding depends on uvicorn internals, and these tests are what notice
if a new uvicorn changes them.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from taskgate.server.protocol import HeadWithBodyProtocol

GET = b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connect(app: Any) -> tuple[HeadWithBodyProtocol, RecordingTransport, ServerState]:
    """A fresh connection to `app` through the protocol `taskgate serve` runs."""
    config = Config(app=app, http=HeadWithBodyProtocol, log_level="warning", access_log=False)
    config.load()
    state = ServerState()
    protocol = HeadWithBodyProtocol(config=config, server_state=state, app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


async def serve_once(app: Any, request: bytes = GET) -> RecordingTransport:
    """Feed `request` to a fresh connection and wait until its response is complete."""
    protocol, transport, state = connect(app)
    protocol.data_received(request)
    await asyncio.gather(*state.tasks)
    await asyncio.sleep(0)  # a held head is let go at the end of the loop's turn
    protocol.connection_lost(None)
    return transport


async def test_a_response_of_known_length_is_one_write() -> None:
    transport = await serve_once(Response(b'{"ok":true}', media_type="application/json"))
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 11" in head
    assert body == b'{"ok":true}'


async def test_an_empty_body_still_sends_the_head_once() -> None:
    transport = await serve_once(Response(status_code=204))
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"".join(transport.writes).count(b"HTTP/1.1") == 1


async def test_a_held_head_goes_out_alone_when_the_body_is_late() -> None:
    body_sent = asyncio.Event()
    seen_before_body: list[list[bytes]] = []
    transport_box: list[RecordingTransport] = []

    async def slow_body(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await asyncio.sleep(0.01)  # several turns of the loop
        seen_before_body.append(list(transport_box[0].writes))
        await send({"type": "http.response.body", "body": b"hi"})
        body_sent.set()

    protocol, transport, _ = connect(slow_body)
    transport_box.append(transport)
    protocol.data_received(GET)
    await body_sent.wait()
    assert len(seen_before_body[0]) == 1 and seen_before_body[0][0].startswith(b"HTTP/1.1 200 OK")
    assert transport.writes[1:] == [b"hi"]
    protocol.connection_lost(None)


async def test_a_streams_head_is_written_before_any_frame() -> None:
    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    transport = await serve_once(stream)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK") and transport.writes[0].endswith(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in transport.writes[0]
    assert transport.writes[1:] == [b"a\r\ndata: {}\n\n\r\n", b"0\r\n\r\n"]


async def test_connection_close_sends_the_held_head_first() -> None:
    async def closing(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = await serve_once(closing, b"GET /x HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\nok")
    assert transport.closed


async def test_a_100_continue_is_not_held() -> None:
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(message["body"])).encode())]})
        await send({"type": "http.response.body", "body": message["body"]})

    protocol, transport, state = connect(echo)
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n")
    for _ in range(3):
        await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.data_received(b"hi")
    await asyncio.gather(*state.tasks)
    assert len(transport.writes) == 2 and transport.writes[1].endswith(b"\r\n\r\nhi")
    protocol.connection_lost(None)


async def test_a_head_request_sends_its_head_once_the_turn_ends() -> None:
    """HEAD has no body write at all: the held head must still go out, on its own."""
    transport = await serve_once(Response(b'{"ok":true}', media_type="application/json"),
                                 b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK") and transport.writes[0].endswith(b"\r\n\r\n")
    assert b"content-length: 11" in transport.writes[0]


async def test_pipelined_requests_get_one_write_each_in_order() -> None:
    async def echo_path(scope: Scope, receive: Receive, send: Send) -> None:
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    protocol, transport, state = connect(echo_path)
    protocol.data_received(b"GET /first HTTP/1.1\r\nhost: t\r\n\r\nGET /second HTTP/1.1\r\nhost: t\r\n\r\n")
    for _ in range(10):
        await asyncio.gather(*state.tasks)
        await asyncio.sleep(0)
    assert [write.rpartition(b"\r\n\r\n")[2] for write in transport.writes] == [b"/first", b"/second"]
    protocol.connection_lost(None)


async def test_a_finished_request_is_freed_without_the_garbage_collector() -> None:
    """A reference cycle per request would be freed only by the collector, whose passes pause the
    event loop."""
    protocol, transport, state = connect(Response(b"{}", media_type="application/json"))
    gc.collect()
    gc.disable()
    try:
        protocol.data_received(GET)
        first = weakref.ref(protocol.cycle)
        await asyncio.gather(*state.tasks)
        await asyncio.sleep(0)
        protocol.data_received(GET)  # keep-alive: the connection's next request replaces the first
        await asyncio.gather(*state.tasks)
        await asyncio.sleep(0)
        assert len(transport.writes) == 2
        assert first() is None
    finally:
        gc.enable()
        protocol.connection_lost(None)
