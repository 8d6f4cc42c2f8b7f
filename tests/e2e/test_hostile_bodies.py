"""Hostile bodies on every endpoint that reads one: malformed, of the wrong kind, deep, too large.

Each case is refused by the rule of `tests/hostile.py` (a 4xx JSON error, no upstream call, a healthy
server). Nesting 300 deep is past what orjson can write back (254), so it must be refused when the
body is parsed, wherever it sits; 10,000 deep is past what it can read.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.hostile import (
    BODY_ENDPOINTS,
    CHAT_EP,
    EMBEDDINGS_EP,
    MARK,
    ROOT_CALL_EP,
    V2_CALL_EP,
    V2_SPAN_EP,
    V2_SPAN_PATCH_EP,
    V2_STREAM_EP,
    V3_BATCH_EP,
    V3_CALL_EP,
    V3_EXAMPLE_EP,
    V3_FN_CALL_EP,
    V3_FN_STREAM_EP,
    V3_SPAN_EP,
    V3_SPAN_PATCH_EP,
    V3_STREAM_EP,
    Endpoint,
    Probe,
    RawConnection,
    deep_array,
    deep_schema,
    dumps,
    raw_request,
    with_extra,
    with_raw,
)

pytestmark = pytest.mark.timeout(60)

BODY_LIMIT = 256 * 1024  # room for the 10,000-deep bodies; the oversize cases send more
SERVER_ENV = {"TASKGATE_MAX_BODY_BYTES": str(BODY_LIMIT)}
DEPTHS = (300, 10_000)

# name -> the bytes sent, made from the endpoint's accepted body
MALFORMED: dict[str, Callable[[Endpoint], bytes]] = {
    "empty": lambda endpoint: b"",
    "whitespace": lambda endpoint: b" \r\n\t ",
    "not-json": lambda endpoint: b"name=hostile&input=hello",
    "truncated": lambda endpoint: dumps(endpoint.body)[:-3],
    "trailing-garbage": lambda endpoint: dumps(endpoint.body) + b" x",
    "two-documents": lambda endpoint: dumps(endpoint.body) * 2,
    "comment": lambda endpoint: b"/* hostile */ " + dumps(endpoint.body),
    "single-quotes": lambda endpoint: dumps(endpoint.body).replace(b'"', b"'"),
    "array-of-strings": lambda endpoint: b'["hello"]',
    "string": lambda endpoint: b'"hello"',
    "number": lambda endpoint: b"42",
    "null": lambda endpoint: b"null",
    "bool": lambda endpoint: b"true",
    "invalid-utf8": lambda endpoint: with_extra(endpoint, b'"\xff\xfe"'),
    "utf8-encoded-surrogate": lambda endpoint: with_extra(endpoint, b'"\xed\xa0\x80"'),
    "bom": lambda endpoint: b"\xef\xbb\xbf" + dumps(endpoint.body),
    "nan": lambda endpoint: with_extra(endpoint, b"NaN"),
    "infinity": lambda endpoint: with_extra(endpoint, b"Infinity"),
    "number-overflowing-double": lambda endpoint: with_extra(endpoint, b"1e400"),
    "raw-control-character": lambda endpoint: with_extra(endpoint, b'"a\x01b"'),
    "unterminated-string": lambda endpoint: with_extra(endpoint, b'"abc'),
}


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
def test_each_endpoint_accepts_its_plain_body(probe: Probe, endpoint: Endpoint) -> None:
    """The control: every refusal below is for the hostile part, not for the endpoint or its body."""
    probe.stored(endpoint, probe.send(endpoint.method, endpoint.path, endpoint.body))


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_body_is_refused(probe: Probe, endpoint: Endpoint, case: str) -> None:
    probe.refused(probe.send(endpoint.method, endpoint.path, raw=MALFORMED[case](endpoint)))


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
@pytest.mark.parametrize("depth", DEPTHS)
def test_a_deep_unknown_member_is_refused(probe: Probe, endpoint: Endpoint, depth: int) -> None:
    """Depth is checked when the body is parsed, so even a member nobody reads cannot get through."""
    probe.refused(probe.send(endpoint.method, endpoint.path, raw=with_extra(endpoint, deep_array(depth))))


def _deep_slots() -> list[tuple[Endpoint, str, object, bool]]:
    """(endpoint, where, a body with MARK where the deep value goes, whether that value is a schema)."""
    slots: list[tuple[Endpoint, str, object, bool]] = []
    for call in (V2_CALL_EP, ROOT_CALL_EP, V2_STREAM_EP):
        slots += [
            (call, "input", {**call.body, "input": MARK}, False),
            (call, "example-input", {**call.body, "examples": [{"input": MARK, "output": "a"}]}, False),
            (call, "tags", {**call.body, "tags": {"t": MARK}}, False),
            (call, "input-schema", {**call.body, "input_schema": MARK}, True),
            (call, "output-schema", {**call.body, "output_schema": MARK}, True),
        ]
    for call in (V3_CALL_EP, V3_STREAM_EP, V3_FN_CALL_EP, V3_FN_STREAM_EP):
        slots += [
            (call, "input", {**call.body, "input": MARK}, False),
            (call, "input-schema", {**call.body, "input_schema": MARK}, True),
            (call, "output-schema", {**call.body, "output_schema": MARK}, True),
            (call, "tool-parameters", {**call.body, "tools": [{"name": "t", "parameters": MARK}]}, True),
        ]
    for span in (V2_SPAN_EP, V2_SPAN_PATCH_EP, V3_SPAN_EP, V3_SPAN_PATCH_EP):
        slots += [(span, key, {**span.body, key: {"m": MARK}}, False) for key in ("meta", "tags")]
        slots += [(span, key, {**span.body, key: MARK}, False) for key in ("input", "output")]
    for span in (V3_SPAN_EP, V3_SPAN_PATCH_EP):
        slots.append((span, "metadata", {**span.body, "metadata": {"m": MARK}}, False))
    chat = CHAT_EP.body
    return [*slots,
            (V3_EXAMPLE_EP, "input", {"input": MARK, "output": "a"}, False),
            (V3_EXAMPLE_EP, "output", {"input": "q", "output": MARK}, False),
            (V3_BATCH_EP, "input", [{"input": MARK, "output": "a"}], False),
            (CHAT_EP, "message-member", {**chat, "messages": [{"role": "user", "content": "hi", "x": MARK}]}, False),
            (CHAT_EP, "metadata", {**chat, "metadata": {"m": MARK}}, False),
            (CHAT_EP, "output-schema", {**chat, "output_schema": MARK}, True),
            (CHAT_EP, "response-format", {**chat, "response_format": {
                "type": "json_schema", "json_schema": {"name": "r", "schema": MARK}}}, True),
            (CHAT_EP, "tool-parameters", {**chat, "tools": [
                {"type": "function", "function": {"name": "t", "parameters": MARK}}]}, True),
            (EMBEDDINGS_EP, "tags", {**EMBEDDINGS_EP.body, "tags": {"t": MARK}}, False)]


DEEP_SLOTS = _deep_slots()


@pytest.mark.parametrize(("endpoint", "where", "template", "schema"), DEEP_SLOTS,
                         ids=[f"{endpoint}-{where}" for endpoint, where, _, _ in DEEP_SLOTS])
@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_nesting_where_the_endpoint_reads_it_is_refused(probe: Probe, endpoint: Endpoint, where: str,
                                                             template: object, schema: bool, depth: int) -> None:
    deep = deep_schema(depth) if schema else deep_array(depth)
    probe.refused(probe.send(endpoint.method, endpoint.path, raw=with_raw(template, deep)))


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
def test_duplicate_keys_are_refused_or_the_last_one_wins(probe: Probe, endpoint: Endpoint) -> None:
    """A wrong value first, then the accepted body: a parser that keeps the first would store it."""
    accepted = endpoint.body[0] if isinstance(endpoint.body, list) else endpoint.body
    first_key = next(iter(accepted))
    raw = dumps(accepted).replace(b"{", b'{"%s": 12345, ' % first_key.encode(), 1)
    if isinstance(endpoint.body, list):
        raw = b"[" + raw + b"]"
    probe.stored_or_refused(endpoint, probe.send(endpoint.method, endpoint.path, raw=raw))


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_json_body_under_another_content_type_is_read_as_json(probe: Probe, endpoint: Endpoint,
                                                                content_type: str) -> None:
    """Bodies are JSON whatever their label (`curl -d` labels them as a form). No cross-site risk
    follows: a browser cannot send the Authorization header without a preflight, and every one of
    these endpoints needs it."""
    reply = probe.send(endpoint.method, endpoint.path, endpoint.body, headers={"Content-Type": content_type})
    probe.stored(endpoint, reply)


@pytest.mark.parametrize("endpoint", [V2_CALL_EP, V3_CALL_EP, CHAT_EP], ids=str)
def test_json_with_a_charset_is_json(probe: Probe, endpoint: Endpoint) -> None:
    reply = probe.send(endpoint.method, endpoint.path, endpoint.body,
                       headers={"Content-Type": "application/json; charset=utf-8"})
    probe.stored(endpoint, reply)


def _oversized(endpoint: Endpoint) -> bytes:
    """The endpoint's accepted body, padded past the limit with an unknown member."""
    return with_extra(endpoint, dumps("x" * (BODY_LIMIT + 1024)))


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
def test_a_body_over_the_limit_is_413(probe: Probe, endpoint: Endpoint) -> None:
    with RawConnection(probe.server.port) as connection:
        connection.send(raw_request(endpoint.method, endpoint.path, _oversized(endpoint)))
        exchange = connection.exchange(1)
    assert exchange.replies, f"no answer to an oversized body (closed: {exchange.closed})"
    probe.refused(exchange.replies[0], statuses={413})


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=str)
def test_a_chunked_body_over_the_limit_is_413(probe: Probe, endpoint: Endpoint) -> None:
    """No content-length to check up front: the limit holds while the body is read."""
    with RawConnection(probe.server.port) as connection:
        connection.send(raw_request(endpoint.method, endpoint.path, _oversized(endpoint), is_chunked=True))
        exchange = connection.exchange(1)
    assert exchange.replies, f"no answer to an oversized chunked body (closed: {exchange.closed})"
    probe.refused(exchange.replies[0], statuses={413})
