"""The hostile-input suite's one rule, its server, its endpoint table and its raw HTTP client.

The project's standard is that hostile input is normal input. Every case of `tests/e2e/test_hostile_*.py`
holds the real `taskgate serve` to the same rule:

- a refusal is a 4xx (never a 5xx) within a bounded time, with the hybrid JSON error body of spec §9.3;
- afterwards the server is healthy, and a refused request reached neither the upstream nor anything
  else: the fake provider logged no request, and not one byte went through the `UpstreamTap` relay in
  front of it (a request the fake's HTTP parser threw out never reaches its log);
- a 2xx that returns an id means the object can be read back.

Each hostile module sets `SERVER_ENV` and gets its own module-scoped server through the
`hostile_server` fixture below (loaded by `tests/conftest.py`), so a group can set the limits it
tests (a small body limit, a short body-read timeout) without touching the other groups.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import KEY, Reply, request, sse_events

REQUEST_TIMEOUT_S = 10.0  # a refusal takes milliseconds: this only stops a hang from stalling the suite
REFUSALS: frozenset[int] = frozenset(range(400, 500)) - {401}  # we always send a valid key
FUNCTION = "hostile-fn"  # exists in every hostile server, with at least one revision
SPAN = "hostile-span"  # a span every hostile server has, for the PATCH endpoints
FUNCTION_PATH = f"/v3/functions/{FUNCTION}"
MEBIBYTE = 1024 * 1024
MARK = "@hostile@"  # where `with_raw` puts raw JSON text into a body


def dumps(value: Any) -> bytes:
    """JSON with every non-ASCII character escaped, so lone surrogates and integers of any size survive."""
    return json.dumps(value).encode()


def with_raw(body: Any, raw: bytes) -> bytes:
    """`body` as JSON with the string MARK replaced by the raw JSON text `raw` (deep, NaN, bad UTF-8...)."""
    text = dumps(body)
    quoted = dumps(MARK)
    assert text.count(quoted) == 1, f"{MARK!r} must occur once in {body!r}"
    return text.replace(quoted, raw)


def deep_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_schema(depth: int) -> bytes:
    """A schema that is valid at every level: `items` of `items` of ... of `{}`."""
    return b'{"items":' * depth + b"{}" + b"}" * depth


def error_body(reply: Reply) -> dict[str, Any]:
    """The §9.3 hybrid error body of `reply`, checked field by field."""
    content_type = reply.headers.get("content-type", "")
    assert content_type.startswith("application/json"), f"error is {content_type!r}, not JSON: {reply.body[:200]!r}"
    body = reply.json()
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    missing = {"type", "message", "detail", "error"} - body.keys()
    assert not missing, f"error body lacks {sorted(missing)}: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and {"code", "message", "details"} <= error.keys(), f"bad 'error': {error!r}"
    assert isinstance(error["code"], str) and isinstance(error["message"], str), f"bad 'error': {error!r}"
    return body


class Probe:
    """One test's view of its module's server and the fake upstream: send, then judge the answer."""

    def __init__(self, server: ServerProcess, fake: FakeProvider, tap: UpstreamTap) -> None:
        self.server = server
        self.fake = fake
        self.tap = tap
        self.upstream_bytes = tap.bytes_sent  # what went upstream before this test

    def send(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             headers: dict[str, str] | None = None, key: str | None = KEY) -> Reply:
        """One request on a fresh connection; `body` is sent as JSON unless `raw` bytes are given."""
        payload = raw if raw is not None or body is None else dumps(body)
        return request(method, self.server.url + path, raw=payload, headers=headers, key=key,
                       timeout=REQUEST_TIMEOUT_S)

    def refused(self, reply: Reply, statuses: Collection[int] = REFUSALS) -> dict[str, Any]:
        """The rule for a refusal: a 4xx JSON error, no upstream call, a healthy server."""
        assert reply.status in statuses, f"expected a refusal, got {reply.status}: {reply.body[:300]!r}"
        body = error_body(reply)
        self.assert_no_upstream()
        self.assert_healthy()
        return body

    def stored(self, endpoint: Endpoint, reply: Reply) -> None:
        """The rule for an acceptance: a 2xx whose object can be read back."""
        assert 200 <= reply.status < 300, f"expected a 2xx, got {reply.status}: {reply.body[:300]!r}"
        endpoint.read_back(self, reply)
        self.assert_healthy()

    def stored_or_refused(self, endpoint: Endpoint, reply: Reply) -> None:
        """For input a server may accept or refuse: either way by the rule, never half of each."""
        if 200 <= reply.status < 300:
            self.stored(endpoint, reply)
        else:
            self.refused(reply)

    def readable(self, path: str) -> dict[str, Any]:
        reply = self.send("GET", path)
        assert reply.status == 200, f"GET {path[:200]} after a 2xx answered {reply.status}: {reply.body[:300]!r}"
        body: dict[str, Any] = reply.json()
        return body

    def assert_no_upstream(self) -> None:
        calls = [(recorded.path, recorded.model) for recorded in self.fake.requests]
        assert not calls, f"a refused request reached the upstream: {calls}"
        sent = self.tap.bytes_sent - self.upstream_bytes
        assert not sent, f"a refused request sent {sent} bytes upstream"

    def assert_healthy(self) -> None:
        reply = self.send("GET", "/health", key=None)
        assert reply.status == 200, f"/health answered {reply.status} after the case"


# ----- the endpoints that take a body, each with a body it accepts and how to read its object back


def _v2_call_stored(probe: Probe, reply: Reply) -> None:
    probe.readable(f"/v2/spans/{reply.json()['span_id']}")


def _v2_stream_stored(probe: Probe, reply: Reply) -> None:
    first = json.loads(sse_events(reply)[0])
    probe.readable(f"/v2/spans/{first['span_id']}")


def _v3_call_stored(probe: Probe, reply: Reply) -> None:
    probe.readable(f"/v3/traces/{reply.json()['meta']['trace_uuid']}")


def _v3_stream_stored(probe: Probe, reply: Reply) -> None:
    events = [json.loads(data) for data in sse_events(reply) if data != "[DONE]"]
    complete = [event for event in events if "meta" in event]
    assert complete, f"the stream has no complete event: {reply.body[-300:]!r}"
    probe.readable(f"/v3/traces/{complete[-1]['meta']['trace_uuid']}")


def _span_header_stored(probe: Probe, reply: Reply) -> None:
    probe.readable(f"/v3/spans/{quote(reply.headers['x-opper-span-id'], safe='')}")


def _v2_span_stored(probe: Probe, reply: Reply) -> None:
    probe.readable(f"/v2/spans/{quote(reply.json()['id'], safe='')}")


def _v3_span_stored(probe: Probe, reply: Reply) -> None:
    probe.readable(f"/v3/spans/{quote(reply.json()['data']['id'], safe='')}")


def _function_stored(probe: Probe, reply: Reply) -> None:
    assert probe.readable(FUNCTION_PATH)["source"] == reply.json()["source"]


def _examples_stored(probe: Probe, reply: Reply) -> None:
    body = reply.json()
    created = {item["uuid"] for item in (body if isinstance(body, list) else [body])}
    listed = {item["uuid"] for item in probe.readable(f"{FUNCTION_PATH}/examples?limit=200")["examples"]}
    assert created <= listed, f"examples {sorted(created - listed)} were answered but are not stored"


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # the case id
    method: str
    path: str
    body: Any  # a body this endpoint answers with a 2xx
    read_back: Callable[[Probe, Reply], None]

    def __str__(self) -> str:
        return self.name


V2_CALL = {"name": "hostile-v2", "input": "hello"}
V3_CALL = {"name": "hostile-v3", "input": "hello"}
V3_RUN = {"input": "hello"}
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
EMBEDDING = {"model": "openai/text-embedding-3-small", "input": "hello"}

V2_CALL_EP = Endpoint("v2-call", "POST", "/v2/call", V2_CALL, _v2_call_stored)
ROOT_CALL_EP = Endpoint("root-call", "POST", "/call", V2_CALL, _v2_call_stored)
V2_STREAM_EP = Endpoint("v2-call-stream", "POST", "/v2/call/stream", V2_CALL, _v2_stream_stored)
V2_SPAN_EP = Endpoint("v2-span-create", "POST", "/v2/spans", {"name": "hostile"}, _v2_span_stored)
V2_SPAN_PATCH_EP = Endpoint("v2-span-update", "PATCH", f"/v2/spans/{SPAN}", {"name": "patched"}, _v2_span_stored)
V3_CALL_EP = Endpoint("v3-call", "POST", "/v3/call", V3_CALL, _v3_call_stored)
V3_STREAM_EP = Endpoint("v3-call-stream", "POST", "/v3/call/stream", V3_CALL, _v3_stream_stored)
V3_FN_CALL_EP = Endpoint("v3-function-call", "POST", f"{FUNCTION_PATH}/call", V3_RUN, _v3_call_stored)
V3_FN_STREAM_EP = Endpoint("v3-function-stream", "POST", f"{FUNCTION_PATH}/stream", V3_RUN, _v3_stream_stored)
V3_FN_PUT_EP = Endpoint("v3-function-update", "PUT", FUNCTION_PATH, {"source": "Answer briefly."}, _function_stored)
V3_EXAMPLE_EP = Endpoint("v3-example", "POST", f"{FUNCTION_PATH}/examples", {"input": "q", "output": "a"},
                         _examples_stored)
V3_BATCH_EP = Endpoint("v3-example-batch", "POST", f"{FUNCTION_PATH}/examples/batch",
                       [{"input": "q", "output": "a"}], _examples_stored)
V3_SPAN_EP = Endpoint("v3-span-create", "POST", "/v3/spans", {"name": "hostile"}, _v3_span_stored)
V3_SPAN_PATCH_EP = Endpoint("v3-span-update", "PATCH", f"/v3/spans/{SPAN}", {"name": "patched"}, _v3_span_stored)
CHAT_EP = Endpoint("compat-chat", "POST", "/v3/compat/chat/completions", CHAT, _span_header_stored)
CHAT_V2_EP = Endpoint("compat-chat-v2-path", "POST", "/v2/openai/chat/completions", CHAT, _span_header_stored)
EMBEDDINGS_EP = Endpoint("compat-embeddings", "POST", "/v3/compat/embeddings", EMBEDDING, _span_header_stored)

# Every endpoint that reads a request body. (`.../revisions/{id}/revert` takes none: see the overflow group.)
BODY_ENDPOINTS = (
    V2_CALL_EP, ROOT_CALL_EP, V2_STREAM_EP, V2_SPAN_EP, V2_SPAN_PATCH_EP,
    V3_CALL_EP, V3_STREAM_EP, V3_FN_CALL_EP, V3_FN_STREAM_EP, V3_FN_PUT_EP, V3_EXAMPLE_EP, V3_BATCH_EP,
    V3_SPAN_EP, V3_SPAN_PATCH_EP, CHAT_EP, CHAT_V2_EP, EMBEDDINGS_EP,
)


def with_extra(endpoint: Endpoint, raw: bytes) -> bytes:
    """The endpoint's accepted body with one unknown member holding the raw JSON text `raw`."""
    body = endpoint.body
    if isinstance(body, list):
        return with_raw([{**body[0], "hostile": MARK}], raw)
    return with_raw({**body, "hostile": MARK}, raw)


# ----- the server and its upstream


class UpstreamTap:
    """A TCP relay in front of the fake upstream that counts every byte Taskgate sends through it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.bytes_sent = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="upstream-tap", daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        """Copy until either side ends, then close both (so the other direction ends too)."""
        try:
            while data := source.recv(65536):
                if counted:
                    with self._lock:
                        self.bytes_sent += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            sink.close()

    def close(self) -> None:
        self.listener.close()


def _seed(probe: Probe) -> None:
    """What the PUT, PATCH and revision endpoints act on: a function with a revision, and a span."""
    example = probe.send("POST", f"{FUNCTION_PATH}/examples", {"input": "q", "output": "a"})
    span = probe.send("POST", "/v3/spans", {"id": SPAN, "name": "seed"})
    assert example.status == 200 and span.status == 200, f"seeding failed: {example.body!r} {span.body!r}"


@dataclass(frozen=True, slots=True)
class HostileServer:
    process: ServerProcess
    tap: UpstreamTap


@pytest.fixture(scope="module")
def hostile_server(request: pytest.FixtureRequest, fake_provider: FakeProvider,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    """A server for one hostile module, with the module's `SERVER_ENV`, reaching the fake upstream
    through a tap, and seeded with FUNCTION and SPAN."""
    tap = UpstreamTap(fake_provider.port)
    env = {
        "OPENAI_BASE_URL": tap.url("/openai/v1"),
        "ANTHROPIC_BASE_URL": tap.url("/anthropic"),
        **getattr(request.module, "SERVER_ENV", {}),
    }
    process = ServerProcess(fake_provider, tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]), env)
    process.start()
    try:
        _seed(Probe(process, fake_provider, tap))
        yield HostileServer(process, tap)
    finally:
        process.stop()
        tap.close()


@pytest.fixture
def probe(hostile_server: HostileServer, fake: FakeProvider) -> Probe:
    """The module's server with a fake upstream that has recorded nothing yet."""
    return Probe(hostile_server.process, fake, hostile_server.tap)


# ----- a raw HTTP/1.1 client, for what http.client refuses to send


@dataclass(slots=True)
class RawExchange:
    replies: list[Reply]
    closed: bool  # the server closed the connection
    elapsed_s: float


class RawConnection:
    """Writes whatever bytes a test gives it and parses the responses that come back, in order."""

    def __init__(self, port: int, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a trickled byte leaves at once
        self.buffer = b""
        self.closed = False
        self.started = time.monotonic()

    def send(self, data: bytes, piece: int = 64 * 1024) -> None:
        """Send `data`, stopping early once the server has answered or closed: a server may refuse a
        request before it has all of it, and a client that keeps writing would only get a reset."""
        for start in range(0, len(data), piece):
            if self._readable(0):
                return
            try:
                self.sock.sendall(data[start:start + piece])
            except (BrokenPipeError, ConnectionResetError):
                return

    def trickle(self, data: bytes, interval: float, until: float) -> None:
        """Send `data` one byte every `interval` seconds, until it is all sent, the server has answered
        or closed, or the clock reaches `until`."""
        for index in range(len(data)):
            if time.monotonic() >= until or self._readable(0):
                return
            try:
                self.sock.sendall(data[index:index + 1])
            except (BrokenPipeError, ConnectionResetError):
                return
            time.sleep(interval)

    def age_s(self) -> float:
        return time.monotonic() - self.started

    def _readable(self, wait: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], wait)
        return bool(ready)

    def _fill(self, deadline: float) -> bool:
        """Read what has arrived; False once the connection is closed or the deadline has passed."""
        remaining = deadline - time.monotonic()
        if self.closed or remaining <= 0 or not self._readable(remaining):
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        return True

    def exchange(self, count: int, within: float = REQUEST_TIMEOUT_S) -> RawExchange:
        """Up to `count` responses, or fewer if the server closes or `within` seconds pass."""
        deadline = time.monotonic() + within
        replies: list[Reply] = []
        while len(replies) < count:
            reply = self._parse()
            if reply is not None:
                replies.append(reply)
            elif not self._fill(deadline):
                break
        if len(replies) == count and not self.closed and self._readable(0):
            self._fill(time.monotonic() + 0.05)  # notice a close that came with the last answer
        return RawExchange(replies, self.closed, self.age_s())

    def _parse(self) -> Reply | None:
        """One complete response from the front of the buffer (by content-length or chunked), or None."""
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parsed = _dechunk(rest)
            if parsed is None:
                return None
            body, rest = parsed
        else:
            length = int(headers.get("content-length", "0"))
            if len(rest) < length:
                return None
            body, rest = rest[:length], rest[length:]
        self.buffer = rest
        return Reply(status, headers, body)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _dechunk(data: bytes) -> tuple[bytes, bytes] | None:
    """(body, what follows) of a complete chunked body at the start of `data`, or None if incomplete."""
    body = b""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            return None
        size = int(size_line.split(b";")[0], 16)
        if len(data) < size + 2:
            return None
        body += data[:size]
        data = data[size + 2:]
        if size == 0:
            return body, data


CHUNKED_END = b"0\r\n\r\n"


def chunked(body: bytes, size: int = 16384) -> bytes:
    """`body` in chunked transfer coding, with its last (empty) chunk."""
    pieces = (body[start:start + size] for start in range(0, len(body), size))
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + CHUNKED_END


def raw_request(method: str, path: str, body: bytes = b"", *, headers: dict[str, str] | None = None,
                key: str | None = KEY, is_chunked: bool = False) -> bytes:
    """The bytes of one HTTP/1.1 request, framed by content-length or, with `is_chunked`, in chunks;
    `headers` are written as given, after (and over) the usual ones."""
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    if key is not None:
        lines.append(f"authorization: Bearer {key}")
    framing = {"transfer-encoding": "chunked"} if is_chunked else {"content-length": str(len(body))}
    sent = {"content-type": "application/json", **framing, **(headers or {})}
    lines += [f"{name}: {value}" for name, value in sent.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (chunked(body) if is_chunked else body)
