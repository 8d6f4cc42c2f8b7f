"""HTTP-level limits of a real `taskgate serve`, driven over raw sockets: JSON 405s with an exact
`Allow`, a JSON 400 for what httptools cannot parse, and slow or huge requests (issue 13, finding 7)
answered 408/431 and disconnected in bounded time rather than held open for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.server import ServerState

from taskgate.server.protocol import BODY_TIMEOUT_KEY, HeadWithBodyProtocol, ReadLimits, protocol_with
from tests.fakes.provider import FakeProvider
from tests.harness import API_KEY, ServerProcess
from tests.http_client import request
from tests.unit.test_http_protocol import RecordingTransport

HEADER_TIMEOUT_S = 0.5
BODY_IDLE_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.5
MAX_HEADER_BYTES = 8192
SLACK_S = 3.0  # a loaded 2-core box may answer late; never for ever
AUTH = f"Authorization: Bearer {API_KEY}\r\n".encode()


@pytest.fixture(scope="module")
def limited(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose read limits are short enough to watch them act."""
    env = {
        "TASKGATE_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
        "TASKGATE_BODY_IDLE_TIMEOUT": str(BODY_IDLE_TIMEOUT_S),
        "TASKGATE_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
        "TASKGATE_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
    }
    with ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("limited")), env=env) as process:
        yield process


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_refusable(sock: socket.socket, data: bytes) -> None:
    """Send `data` to a server that may refuse it part-way: its answer then already waits to be read."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it does not close
    within `timeout`."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for over {timeout} s; it sent {received[:200]!r}")
    except ConnectionResetError:
        pass  # closed with our unread bytes still in its buffer: as good as closed
    return received


def parse(response: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


def assert_json_error(response: bytes, status: int, code: str) -> dict[str, str]:
    got, headers, body = parse(response)
    assert got == status, response[:300]
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert body["error"]["code"] == code and body["detail"]
    return headers


# ---- 405 and 400


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v2/call", "POST"),
    ("DELETE", "/call/stream", "POST"),
    ("PATCH", "/v3/functions/some-fn", "DELETE, GET, PUT"),
    ("PATCH", "/v3/functions/team/fn/revisions/1", "DELETE, GET, PUT"),  # a name may hold slashes: GET
    ("GET", "/v3/compat/chat/completions", "POST"),
    ("PUT", "/v2/openai/chat/completions", "POST"),
    ("POST", "/health", "GET, HEAD"),
    ("PUT", "/v3/spans/some-span", "DELETE, GET, HEAD, PATCH"),
    ("POST", "/v2/spans/some-span", "DELETE, GET, HEAD, PATCH"),
    ("DELETE", "/v3/spans", "POST"),
    ("POST", "/v3/traces", "GET, HEAD"),
])
def test_a_wrong_method_gets_a_json_405_allowing_exactly_the_paths_methods(
        server: ServerProcess, method: str, path: str, allow: str) -> None:
    reply = request(method, server.url + path, {} if method in ("POST", "PUT", "PATCH") else None)
    assert reply.status == 405
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["allow"] == allow
    body = reply.json()
    assert body["error"]["code"] == "method_not_allowed" and method in body["detail"]


def test_a_request_httptools_cannot_parse_gets_a_json_400(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_json_error(read_until_closed(sock, SLACK_S), 400, "bad_request")


# ---- slow and huge requests


def test_a_body_that_stops_arriving_gets_408(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(b"POST /v2/call HTTP/1.1\r\nHost: x\r\n" + AUTH
                     + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\": ")
        started = time.monotonic()
        response = read_until_closed(sock, BODY_IDLE_TIMEOUT_S + SLACK_S)
    assert time.monotonic() - started >= BODY_IDLE_TIMEOUT_S * 0.9
    assert_json_error(response, 408, "request_timeout")
    assert b"stalled" in response


def test_a_body_sent_before_its_first_byte_stalls_gets_408(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(b"POST /v3/spans HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 10\r\n\r\n")
        assert_json_error(read_until_closed(sock, BODY_IDLE_TIMEOUT_S + SLACK_S), 408, "request_timeout")


def test_a_body_that_trickles_in_gets_408_at_the_whole_body_deadline(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(b"POST /v2/call HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 10000\r\n\r\n")
        started = time.monotonic()
        sock.settimeout(BODY_IDLE_TIMEOUT_S / 5)
        response = b""
        while not response and time.monotonic() - started < BODY_TIMEOUT_S + SLACK_S:
            sock.sendall(b" ")  # never a pause long enough for the idle timeout
            try:
                response = sock.recv(65536)
            except TimeoutError:
                continue
    assert response, "no answer within the whole-body deadline"
    assert time.monotonic() - started >= BODY_TIMEOUT_S * 0.9
    assert_json_error(response, 408, "request_timeout")


def test_a_head_sent_byte_by_byte_gets_408(limited: ServerProcess) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
    with connect(limited) as sock:
        started = time.monotonic()
        sent = 0
        sock.settimeout(0.05)
        response = b""
        while not response and sent < len(head) and time.monotonic() - started < HEADER_TIMEOUT_S + SLACK_S:
            try:
                sock.sendall(head[sent:sent + 1])
                sent += 1
                response = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        response += read_until_closed(sock, SLACK_S)
    assert sent < len(head), "the whole head went through"
    assert_json_error(response, 408, "request_timeout")


def test_a_connection_that_sends_nothing_is_closed(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        assert_json_error(read_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S), 408, "request_timeout")


def test_a_slow_head_on_a_kept_alive_connection_gets_408(limited: ServerProcess) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(SLACK_S)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        assert_json_error(read_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S), 408, "request_timeout")


@pytest.mark.parametrize("size", [MAX_HEADER_BYTES + 1, 1024 * 1024])
def test_a_head_over_the_limit_gets_431(limited: ServerProcess, size: int) -> None:
    with connect(limited) as sock:
        send_refusable(sock, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * size + b"\r\n\r\n")
        assert_json_error(read_until_closed(sock, SLACK_S), 431, "headers_too_large")


def test_a_refused_client_that_is_still_sending_can_finish_and_read_its_answer(limited: ServerProcess) -> None:
    """A client such as http.client sends its whole request before it reads. Were the connection
    closed on refusal, what it sends next would draw a reset, and its send would fail before it
    ever read the answer: the server reads and drops the rest, and closes when the client has."""
    with connect(limited) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (MAX_HEADER_BYTES * 2))
        time.sleep(0.2)  # refused and answered by now
        for _ in range(16):  # the rest of a megabyte head, sent after the answer
            sock.sendall(b"b" * 65536)
        assert_json_error(read_until_closed(sock, SLACK_S), 431, "headers_too_large")


def test_the_default_head_limit_refuses_a_megabyte_of_headers(server: ServerProcess) -> None:
    with connect(server) as sock:
        send_refusable(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: b\r\n" * (1024 * 1024 // 10) + b"\r\n")
        assert_json_error(read_until_closed(sock, SLACK_S), 431, "headers_too_large")


def test_the_head_after_a_body_answered_early_is_bounded_too(limited: ServerProcess) -> None:
    """A request answered before its body is read (401: no key): the rest of that body is still its
    body, and what follows is the next request's head, limited as any other."""
    with connect(limited) as sock:
        sock.sendall(b"POST /v3/spans HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789")
        sock.settimeout(SLACK_S)
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        sock.sendall(b"0123456789GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        send_refusable(sock, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 1024 * 1024 + b"\r\n\r\n")
        assert_json_error(read_until_closed(sock, SLACK_S), 431, "headers_too_large")
    with connect(limited) as sock:
        sock.sendall(b"POST /v3/spans HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789")
        sock.settimeout(SLACK_S)
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        send_refusable(sock, b"0123456789GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 1024 * 1024)
        assert b"431" in read_until_closed(sock, SLACK_S).split(b"\r\n", 1)[0]


def test_requests_within_the_limits_are_served(limited: ServerProcess) -> None:
    """A head just under the limit, and a small head with a large body in one send (only the head counts)."""
    head_room = MAX_HEADER_BYTES - 200
    big_head = request("GET", f"{limited.url}/health", headers={"X-Big": "b" * head_room})
    assert big_head.status == 200
    span = request("POST", f"{limited.url}/v3/spans", {"name": "big", "input": "i" * (MAX_HEADER_BYTES * 8)})
    assert span.status == 200
    with connect(limited) as sock:  # a body arriving in pieces, each well within the pause allowed
        body = json.dumps({"name": "pieces"}).encode()
        sock.sendall(b"POST /v3/spans HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: %d\r\n\r\n" % len(body))
        for piece in (body[:5], body[5:10], body[10:]):
            time.sleep(BODY_IDLE_TIMEOUT_S / 5)
            sock.sendall(piece)
        sock.settimeout(SLACK_S)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


# ---- in process: a body held up by the app, not the client, is waited for

IDLE_S = 0.5
POLL_S = 0.01


def connect_limited(app: Any) -> tuple[HeadWithBodyProtocol, RecordingTransport]:
    """A connection through the configured protocol `taskgate serve` runs, with a short pause allowed."""
    protocol_class = protocol_with(ReadLimits(body_idle_timeout_s=IDLE_S, body_timeout_s=60))
    config = Config(app=app, http=protocol_class, log_level="warning", access_log=False)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


def late_reader(bodies: list[bytes], scopes: list[Scope]) -> Any:
    """An app that reads its body only after three idle timeouts, then answers 200."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(IDLE_S * 3)
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        bodies.append(body)
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_a_body_stopped_by_flow_control_is_not_a_stalled_client() -> None:
    """Past uvicorn's high-water mark reading pauses until the app reads: that wait is the app's."""
    bodies: list[bytes] = []
    scopes: list[Scope] = []
    protocol, transport = connect_limited(late_reader(bodies, scopes))
    body = b"b" * (HIGH_WATER_LIMIT * 2)
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % (len(body) + 1) + body)
    assert protocol.flow.read_paused
    await asyncio.sleep(IDLE_S * 2)
    protocol.data_received(b"!")  # the client's last byte, once reading resumes
    for _ in range(1000):
        if bodies:
            break
        await asyncio.sleep(POLL_S)
    assert bodies == [body + b"!"] and BODY_TIMEOUT_KEY not in scopes[0]
    assert transport.writes[-1].startswith(b"HTTP/1.1 200")
    protocol.connection_lost(None)


async def test_a_client_waiting_for_100_continue_is_not_a_stalled_client() -> None:
    bodies: list[bytes] = []
    scopes: list[Scope] = []
    protocol, transport = connect_limited(late_reader(bodies, scopes))
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n")
    for _ in range(1000):
        if transport.writes:  # the app has asked for the body: uvicorn sent the 100
            break
        await asyncio.sleep(POLL_S)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.data_received(b"ok")
    for _ in range(1000):
        if bodies:
            break
        await asyncio.sleep(POLL_S)
    assert bodies == [b"ok"] and BODY_TIMEOUT_KEY not in scopes[0]
    protocol.connection_lost(None)
