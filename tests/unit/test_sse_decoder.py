"""The incremental SSE decoder used for every upstream stream."""

from __future__ import annotations

import pytest

from taskgate.errors import BadRequestError
from taskgate.providers.upstream_http import SSEDecoder, request_timeout, upstream_message

STREAM = (
    b": comment line\r\n"
    b"event: first\r\n"
    b"data: {\"a\":\r\n"
    b"data: 1}\r\n"
    b"\r\n"
    b"data: plain\n"
    b"\n"
    b"id: 7\rretry: 10\rdata:no-space\r\r"
    b"data: [DONE]\n\n"
)
EXPECTED = [("first", b'{"a":\n1}'), ("message", b"plain"), ("message", b"no-space"), ("message", b"[DONE]")]


def decode(chunks: list[bytes]) -> list[tuple[str, bytes]]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    events += decoder.flush()
    return [(e.event, e.data) for e in events]


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_any_read_boundaries_give_the_same_events(size: int) -> None:
    assert decode([STREAM[i:i + size] for i in range(0, len(STREAM), size)]) == EXPECTED


def test_an_unterminated_last_event_is_dispatched_at_the_end() -> None:
    assert decode([b"data: x\n\ndata: tail"]) == [("message", b"x"), ("message", b"tail")]
    assert decode([b"data: tail\r"]) == [("message", b"tail")]


def test_event_name_applies_to_one_event_only() -> None:
    assert decode([b"event: e\n\ndata: y\n\n"]) == [("message", b"y")]


def test_upstream_message_finds_the_providers_words() -> None:
    assert upstream_message(b'{"error": {"message": "bad key", "type": "x"}}') == "bad key"
    assert upstream_message(b'{"type": "error", "error": {"type": "x", "message": "overloaded"}}') == "overloaded"
    assert upstream_message(b'{"error": "plain error"}') == "plain error"
    assert upstream_message(b'{"detail": "not found"}') == "not found"
    assert upstream_message(b"<html>502</html>") == "<html>502</html>"
    assert upstream_message(b"") == "empty response body"


def test_request_timeout_option() -> None:
    assert request_timeout({}, 120.0) == 120.0
    assert request_timeout({"timeout": 3}, 120.0) == 3.0
    for bad in (0, -1, "3", True):
        with pytest.raises(BadRequestError, match="timeout"):
            request_timeout({"timeout": bad}, 120.0)
