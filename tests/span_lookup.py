"""Finding a call's span over the API when the test never saw its id (the client left, or failed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.harness import ServerProcess
from tests.http_client import get


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def span_by_id(server: ServerProcess, span_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The span `span_id` as `/v3/spans/{id}` shows it, waiting up to `timeout` for it to be recorded."""
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        reply = get(f"{server.url}/v3/spans/{span_id}")
        if reply.status == 200:
            found.append(reply.json())
        return bool(found)

    assert wait_until(recorded, timeout), f"span {span_id} was not recorded"
    return found[0]


def recorded_span(server: ServerProcess, name: str, timeout: float = 5.0) -> dict[str, Any]:
    """The one span of the one trace named `name`, waiting up to `timeout` for it to be recorded."""
    traces: list[dict[str, Any]] = []

    def listed() -> bool:
        traces[:] = get(f"{server.url}/v3/traces?name={name}").json()["data"]
        return bool(traces)

    assert wait_until(listed, timeout), f"no trace named {name}"
    spans = get(f"{server.url}/v3/traces/{traces[0]['id']}").json()["data"]["spans"]
    assert len(traces) == 1 and len(spans) == 1, (traces, spans)
    return dict(spans[0])
