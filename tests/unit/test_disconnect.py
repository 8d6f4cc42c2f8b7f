"""`until_client_leaves`: the protocol's report of a lost connection, or a task that waits for
`http.disconnect` under another ASGI server, cancels the handler's work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from taskgate.server.disconnect import until_client_leaves
from taskgate.server.protocol import ON_CLIENT_LEFT_KEY, REPORTS_DEPARTURE_KEY


def request(reports_departure: bool, left: asyncio.Event) -> Request:
    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/", "headers": []}
    if reports_departure:
        scope[REPORTS_DEPARTURE_KEY] = True
    return Request(scope, receive)


async def slow_work(cancelled: list[bool]) -> str:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        cancelled.append(True)
        raise
    return "done"


@pytest.mark.parametrize("reports_departure", [True, False], ids=["protocol reports", "receive watched"])
async def test_work_finishes_when_the_client_stays(reports_departure: bool) -> None:
    req = request(reports_departure, asyncio.Event())
    assert await until_client_leaves(req, asyncio.sleep(0, "result")) == "result"
    assert ON_CLIENT_LEFT_KEY not in req.scope  # nothing left behind for a later report


async def test_the_protocols_report_cancels_the_work() -> None:
    req = request(True, asyncio.Event())
    cancelled: list[bool] = []
    task = asyncio.ensure_future(until_client_leaves(req, slow_work(cancelled)))
    await asyncio.sleep(0.01)
    req.scope[ON_CLIENT_LEFT_KEY]()  # what the protocol does when the connection is lost mid-request
    with pytest.raises(ClientDisconnect):
        await task
    assert cancelled == [True] and ON_CLIENT_LEFT_KEY not in req.scope


async def test_without_the_protocols_report_a_disconnect_message_cancels_the_work() -> None:
    left = asyncio.Event()
    req = request(False, left)
    cancelled: list[bool] = []
    task = asyncio.ensure_future(until_client_leaves(req, slow_work(cancelled)))
    await asyncio.sleep(0.01)
    left.set()
    with pytest.raises(ClientDisconnect):
        await task
    assert cancelled == [True]


async def test_a_report_after_the_work_finished_changes_nothing() -> None:
    req = request(True, asyncio.Event())
    await until_client_leaves(req, asyncio.sleep(0))
    assert ON_CLIENT_LEFT_KEY not in req.scope
