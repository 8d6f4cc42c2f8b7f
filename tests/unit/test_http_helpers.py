"""The request helpers every handler goes through, driven with scripted ASGI messages."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from taskgate.errors import PayloadTooLargeError
from taskgate.server.request_io import CLIENT_CLOSED_REQUEST, guarded, header_map, read_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


def request_with(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/v2/call", "headers": headers or []}
    return Request(scope, receive)


async def test_a_body_in_several_messages_is_joined() -> None:
    request = request_with([
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b" 1}", "more_body": False},
    ])
    assert await read_body(request, 100) == b'{"a": 1}'


async def test_a_body_over_the_limit_without_a_declared_length_is_refused_as_it_arrives() -> None:
    request = request_with([{"type": "http.request", "body": b"x" * 60, "more_body": True},
                            {"type": "http.request", "body": b"x" * 60, "more_body": True}])
    with pytest.raises(PayloadTooLargeError, match="over the limit of 100 bytes"):
        await read_body(request, 100)


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request = request_with([], headers=[(b"content-length", b"5000")])
    with pytest.raises(PayloadTooLargeError, match="5000 bytes"):
        await read_body(request, 100)


async def test_a_client_leaving_mid_body_is_a_disconnect_not_a_short_body() -> None:
    request = request_with([{"type": "http.request", "body": b'{"a":', "more_body": True},
                            {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnect):
        await read_body(request, 100)


async def test_headers_are_looked_up_case_blind_and_the_first_of_a_repeat_wins() -> None:
    request = request_with([], headers=[(b"authorization", b"Bearer one"), (b"X-Opper-Name", b"n"),
                                        (b"authorization", b"Bearer two")])
    headers = header_map(request)
    assert headers["authorization"] == "Bearer one" == request.headers["authorization"]
    assert headers["x-opper-name"] == "n"  # a server that kept the client's capitals
    assert headers.get("x-opper-parent-span-id") is None
    assert header_map(request) is headers  # made once per request


async def test_a_client_gone_mid_body_is_logged_as_499_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    @guarded
    async def handler(request: Request) -> Response:
        await read_body(request, 100)
        return Response(status_code=200)

    request = request_with([{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}])
    with caplog.at_level(logging.ERROR, logger="taskgate.api"):
        response = await handler(request)
    assert response.status_code == CLIENT_CLOSED_REQUEST
    assert not caplog.records
