"""Transport-level hostility, on raw sockets: bodies and heads that stop arriving or trickle in, huge
header blocks and request lines, malformed framing, pipelining, and wrong methods on every path.

The server here runs with a one-second head and body deadline (`TASKGATE_HEADER_TIMEOUT`,
`TASKGATE_BODY_TIMEOUT`, `TASKGATE_BODY_IDLE_TIMEOUT`): a request whose head or body is not all in
within that second is answered 408 (JSON) or its connection is closed, and the cases allow
STALL_DEADLINE_S for it. Every answer the server does send follows the rule of `tests/hostile.py`,
including those its HTTP parser sends (a JSON body, not text).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

import pytest

from tests.hostile import (
    CHAT,
    CHUNKED_END,
    FUNCTION_PATH,
    REFUSALS,
    SPAN,
    V2_CALL,
    Probe,
    RawConnection,
    RawExchange,
    dumps,
    error_body,
    raw_request,
)
from tests.http_client import Reply

pytestmark = pytest.mark.timeout(60)

BODY_TIMEOUT_S = 1
BODY_LIMIT = 64 * 1024
SERVER_ENV = {
    "TASKGATE_HEADER_TIMEOUT": str(BODY_TIMEOUT_S),
    "TASKGATE_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
    "TASKGATE_BODY_IDLE_TIMEOUT": str(BODY_TIMEOUT_S),
    "TASKGATE_MAX_BODY_BYTES": str(BODY_LIMIT),
}
STALL_DEADLINE_S = BODY_TIMEOUT_S + 2.0  # the timeout plus slack for a busy machine
TRICKLE_INTERVAL_S = 0.2  # well under the timeout: only a deadline for the whole read stops it
CALL_BODY = dumps(V2_CALL)
HEALTH = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def _exchange(probe: Probe, data: bytes, count: int = 1, within: float = 10.0) -> RawExchange:
    with RawConnection(probe.server.port) as connection:
        connection.send(data)
        return connection.exchange(count, within)


def _refused_reply(probe: Probe, exchange: RawExchange, statuses: Collection[int] = REFUSALS) -> Reply:
    assert exchange.replies, f"no answer (connection closed: {exchange.closed}, after {exchange.elapsed_s:.1f}s)"
    reply = exchange.replies[0]
    probe.refused(reply, statuses)
    return reply


def _cut_off(probe: Probe, exchange: RawExchange) -> None:
    """A stalled request ends in bounded time: a 408 JSON answer, or a closed connection."""
    assert exchange.replies or exchange.closed, f"still waiting for the request after {exchange.elapsed_s:.1f}s"
    assert exchange.elapsed_s <= STALL_DEADLINE_S, f"cut off only after {exchange.elapsed_s:.1f}s"
    if exchange.replies:
        probe.refused(exchange.replies[0], statuses={408})
    else:
        probe.assert_no_upstream()
        probe.assert_healthy()


# ----- requests that stop arriving


def _head(path: str, length: int, **headers: str) -> bytes:
    return raw_request("POST", path, headers={"content-length": str(length), **headers})


STALLS: dict[str, bytes] = {
    "head-then-nothing": _head("/v2/call", len(CALL_BODY)),
    "half-the-body": _head("/v2/call", len(CALL_BODY)) + CALL_BODY[: len(CALL_BODY) // 2],
    "half-the-body-v3": _head(f"{FUNCTION_PATH}/call", 100) + b'{"input": "he',
    "chunked-without-its-end": raw_request("POST", "/v2/call", CALL_BODY, is_chunked=True).removesuffix(CHUNKED_END),
    "half-a-head": b"POST /v2/call HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer test-key\r\n",
}


@pytest.mark.parametrize("case", sorted(STALLS))
def test_a_request_that_stops_arriving_is_cut_off(probe: Probe, case: str) -> None:
    with RawConnection(probe.server.port, timeout=STALL_DEADLINE_S + 1) as connection:
        connection.send(STALLS[case])
        _cut_off(probe, connection.exchange(1, within=STALL_DEADLINE_S))


TRICKLES: dict[str, bytes] = {
    "body": _head("/v2/call", 10_000) + b'{"name": "t", "input": "' + b"x" * 9_000,
    "head": raw_request("POST", "/v2/call", CALL_BODY, headers={"x-padding": "p" * 200}),
}


@pytest.mark.parametrize("case", sorted(TRICKLES))
def test_a_request_that_trickles_in_is_cut_off(probe: Probe, case: str) -> None:
    """One byte every 0.2 s never lets a per-read timeout fire: the whole read needs a deadline."""
    data = TRICKLES[case]
    start = len(data) - 9_000 if case == "body" else 0
    with RawConnection(probe.server.port, timeout=STALL_DEADLINE_S + 1) as connection:
        connection.send(data[:start])
        connection.trickle(data[start:], TRICKLE_INTERVAL_S, until=time.monotonic() + STALL_DEADLINE_S)
        _cut_off(probe, connection.exchange(1, within=max(0.0, STALL_DEADLINE_S - connection.age_s())))


def test_a_request_sent_byte_by_byte_without_pauses_is_answered(probe: Probe) -> None:
    """The control: a request in one-byte segments is fine; only stalls are cut off."""
    with RawConnection(probe.server.port) as connection:
        connection.trickle(raw_request("POST", "/v2/call", CALL_BODY), 0, until=time.monotonic() + 10)
        exchange = connection.exchange(1)
    assert exchange.replies and exchange.replies[0].status == 200, exchange


# ----- oversized heads


def _many_headers(count: int, size: int) -> dict[str, str]:
    return {f"x-padding-{index}": "p" * size for index in range(count)}


OVERSIZED_HEADS: dict[str, Callable[[], bytes]] = {
    "one-megabyte-header": lambda: raw_request("POST", "/v2/call", CALL_BODY, headers={"x-padding": "p" * 2**20}),
    "a-thousand-kilobyte-headers": lambda: raw_request("POST", "/v2/call", CALL_BODY,
                                                       headers=_many_headers(1000, 1024)),
    "ten-thousand-small-headers": lambda: raw_request("POST", "/v2/call", CALL_BODY, headers=_many_headers(10_000, 1)),
    "megabyte-opper-name": lambda: raw_request("POST", "/v3/compat/chat/completions", dumps(CHAT),
                                               headers={"x-opper-name": "n" * 2**20}),
    "100kb-query": lambda: raw_request("POST", "/v2/call?pad=" + "p" * 100_000, CALL_BODY),
    "100kb-query-on-a-get": lambda: raw_request("GET", "/v3/functions?pad=" + "p" * 100_000),
    "100kb-function-name": lambda: raw_request("GET", "/v3/functions/" + "f" * 100_000),
    "100kb-call-path": lambda: raw_request("POST", "/v3/functions/" + "f" * 100_000 + "/call", b'{"input": "x"}'),
}


@pytest.mark.parametrize("case", sorted(OVERSIZED_HEADS))
def test_an_oversized_head_is_refused(probe: Probe, case: str) -> None:
    _refused_reply(probe, _exchange(probe, OVERSIZED_HEADS[case]()))


# ----- malformed heads and framing

def _chat_named(name: str) -> bytes:
    """A chat completion whose function name comes from the `x-opper-name` header."""
    return raw_request("POST", "/v3/compat/chat/completions", dumps(CHAT), headers={"x-opper-name": name})


MALFORMED_HEADS: dict[str, bytes] = {
    "bare-cr-in-value": _chat_named("a\rb"),
    "bare-lf-in-value": _chat_named("a\nInjected: 1"),
    "nul-in-value": _chat_named("a\0b"),
    "obsolete-line-folding": _chat_named("a\r\n folded"),
    "space-before-colon": raw_request("POST", "/v2/call", CALL_BODY, headers={"x-opper-name ": "a"}),
    "no-colon": raw_request("POST", "/v2/call", CALL_BODY).replace(b"\r\n\r\n", b"\r\nx-opper-name\r\n\r\n", 1),
    "non-ascii-name": raw_request("POST", "/v2/call", CALL_BODY, headers={"x-n\u00f6te": "1"}),
    "two-content-lengths": raw_request("POST", "/v2/call", CALL_BODY).replace(
        b"\r\n\r\n", b"\r\ncontent-length: %d\r\n\r\n" % (len(CALL_BODY) + 5), 1),
    "content-length-and-chunked": raw_request("POST", "/v2/call", CALL_BODY, is_chunked=True,
                                              headers={"content-length": str(len(CALL_BODY))}),
    "negative-content-length": raw_request("POST", "/v2/call", CALL_BODY, headers={"content-length": "-1"}),
    "content-length-not-a-number": raw_request("POST", "/v2/call", CALL_BODY, headers={"content-length": "1e2"}),
    "content-length-beyond-64-bits": raw_request("POST", "/v2/call", CALL_BODY,
                                                 headers={"content-length": str(2**64)}),
    "unknown-transfer-encoding": raw_request("POST", "/v2/call", CALL_BODY, is_chunked=True,
                                             headers={"transfer-encoding": "gzip"}),
    "chunk-size-not-hex": raw_request("POST", "/v2/call", is_chunked=True).removesuffix(CHUNKED_END)
    + b"zz\r\n" + CALL_BODY + b"\r\n" + CHUNKED_END,
    "unknown-method": raw_request("BREW", "/v2/call", CALL_BODY),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_HEADS))
def test_a_malformed_head_is_refused(probe: Probe, case: str) -> None:
    _refused_reply(probe, _exchange(probe, MALFORMED_HEADS[case]))


# ----- pipelining


def test_a_good_request_after_a_bad_one_on_the_same_connection_is_answered(probe: Probe) -> None:
    bad = raw_request("POST", "/v2/call", b'{"name": ')
    exchange = _exchange(probe, bad + HEALTH, count=2)
    assert [reply.status for reply in exchange.replies][1:] == [200], exchange
    _refused_reply(probe, exchange)


def test_a_good_request_after_a_wrong_method_is_answered(probe: Probe) -> None:
    exchange = _exchange(probe, raw_request("PATCH", "/v2/call", CALL_BODY) + HEALTH, count=2)
    assert [reply.status for reply in exchange.replies][1:] == [200], exchange
    _refused_reply(probe, exchange, statuses={405})


def test_two_good_requests_in_one_write_are_both_answered(probe: Probe) -> None:
    """The control for the pipelining cases."""
    exchange = _exchange(probe, HEALTH + HEALTH, count=2)
    assert [reply.status for reply in exchange.replies] == [200, 200], exchange


EMBEDDED = raw_request("GET", "/v3/functions")  # a request hidden in another one's body


@pytest.mark.parametrize("outer", [
    pytest.param(raw_request("POST", "/v2/call", EMBEDDED + b" " * BODY_LIMIT), id="refused-for-size"),
    pytest.param(raw_request("GET", "/health", EMBEDDED), id="body-never-read"),
    pytest.param(raw_request("PATCH", "/v2/call", EMBEDDED), id="refused-for-method"),
    pytest.param(raw_request("POST", "/v3/spans", EMBEDDED), id="refused-for-its-body"),
])
def test_a_request_inside_a_body_is_never_answered(probe: Probe, outer: bytes) -> None:
    """Whether or not a handler reads its body, the body's bytes are never taken for a request."""
    with RawConnection(probe.server.port) as connection:
        connection.send(outer)
        exchange = connection.exchange(2, within=0.5)
    assert len(exchange.replies) == 1, f"answered {[reply.status for reply in exchange.replies]}: smuggled"
    if exchange.replies[0].status >= 400:
        error_body(exchange.replies[0])
    probe.assert_healthy()


# ----- wrong methods: 405, JSON, and an Allow header naming exactly the right methods

# Any path under /v3/functions/ also names a function: a name may contain "/" (2.1.1 sends %2F), so
# GET, PUT and DELETE are right on every one of them.
ANY_FUNCTION = {"GET", "PUT", "DELETE"}
ALLOWED: dict[str, set[str]] = {
    "/health": {"GET"},
    "/metrics": {"GET"},
    "/v3/openapi.json": {"GET"},
    "/v3/openapi.yaml": {"GET"},
    "/v3/models": {"GET"},
    "/v2/call": {"POST"},
    "/call": {"POST"},
    "/v2/call/stream": {"POST"},
    "/call/stream": {"POST"},
    "/v2/spans": {"POST"},
    "/spans": {"POST"},
    f"/v2/spans/{SPAN}": {"GET", "PATCH", "DELETE"},
    f"/spans/{SPAN}": {"GET", "PATCH", "DELETE"},
    **{f"{root}/spans/{SPAN}/{action}": {"POST"} for root in ("/v2", "") for action in ("save_examples", "feedback")},
    **{f"{root}/spans/{SPAN}/metrics": {"GET", "POST"} for root in ("/v2", "")},
    **{f"{root}/spans/{SPAN}/metrics/some-metric": {"GET", "PATCH", "DELETE"} for root in ("/v2", "")},
    **{f"{root}/traces": {"GET"} for root in ("/v2", "")},
    **{f"{root}/traces/some-trace": {"GET"} for root in ("/v2", "")},
    "/v3/compat/chat/completions": {"POST"},
    "/v2/openai/chat/completions": {"POST"},
    "/openai/chat/completions": {"POST"},
    "/v3/compat/embeddings": {"POST"},
    "/v3/call": {"POST"},
    "/v3/call/stream": {"POST"},
    "/v3/functions": {"GET"},
    "/v3/spans": {"POST"},
    f"/v3/spans/{SPAN}": {"GET", "PATCH", "DELETE"},
    "/v3/traces": {"GET"},
    "/v3/traces/some-trace": {"GET", "DELETE"},
    f"/v3/spans/{SPAN}/events": {"GET", "POST"},
    "/v3/traces/some-trace/events": {"GET"},
    FUNCTION_PATH: ANY_FUNCTION,
    f"{FUNCTION_PATH}/call": ANY_FUNCTION | {"POST"},
    f"{FUNCTION_PATH}/stream": ANY_FUNCTION | {"POST"},
    f"{FUNCTION_PATH}/revisions": ANY_FUNCTION,
    f"{FUNCTION_PATH}/revisions/1": ANY_FUNCTION,
    f"{FUNCTION_PATH}/revisions/1/revert": ANY_FUNCTION | {"POST"},
    f"{FUNCTION_PATH}/examples": ANY_FUNCTION | {"POST"},
    f"{FUNCTION_PATH}/examples/batch": ANY_FUNCTION | {"POST"},
    f"{FUNCTION_PATH}/examples/some-example": ANY_FUNCTION,
}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WRONG_METHODS = [(path, method) for path, allowed in ALLOWED.items() for method in METHODS if method not in allowed]


@pytest.mark.parametrize(("path", "method"), WRONG_METHODS)
def test_a_wrong_method_is_405_with_the_right_allow_header(probe: Probe, path: str, method: str) -> None:
    reply = probe.send(method, path, raw=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    probe.refused(reply, statuses={405})
    allow = {word.strip().upper() for word in reply.headers.get("allow", "").split(",") if word.strip()}
    assert allow - {"HEAD", "OPTIONS"} == ALLOWED[path], f"Allow: {reply.headers.get('allow')!r}"


@pytest.mark.parametrize("path", ["/v2/call", "/v3/spans", FUNCTION_PATH, f"{FUNCTION_PATH}/call", "/health",
                                  "/metrics"])
def test_an_unknown_method_is_refused(probe: Probe, path: str) -> None:
    _refused_reply(probe, _exchange(probe, raw_request("BREW", path, b"{}")))
