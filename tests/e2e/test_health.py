"""`/health` and `/ready` on a healthy server: their documented bodies, no key needed, and odd
requests to them answered as any route's are (a 4xx JSON error or the plain answer, never a 500)."""

from __future__ import annotations

import pytest

from tests.harness import ServerProcess
from tests.http_client import get, request


def test_a_healthy_server_says_ok_and_ready(server: ServerProcess) -> None:
    assert get(f"{server.url}/health", key=None).json() == {"status": "ok"}
    ready = get(f"{server.url}/ready", key=None)
    assert ready.status == 200
    body = ready.json()
    assert (body["status"], body["store"], body["journal"]["state"]) == ("ready", "ok", "ok")
    assert body["journal"]["max_bytes"] == 256 * 1024 * 1024
    assert body["journal"]["unstored_spans"] >= 0 and body["journal"]["bytes"] >= 0
    assert body["journal"]["failed_appends"] == 0


@pytest.mark.parametrize("path", ["/health", "/ready"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_a_405_json_error(server: ServerProcess, path: str, method: str) -> None:
    reply = request(method, f"{server.url}{path}", {"status": "degraded"}, key=None)
    assert reply.status == 405 and reply.json()["error"]["code"]
    assert get(f"{server.url}/health", key=None).json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/health", "/ready"])
@pytest.mark.parametrize("suffix", ["?status=degraded", "?" + "a=" + "x" * 20_000, "?%00%ff=%zz", "/", "/../v3/call"])
def test_odd_urls_never_fail_the_server(server: ServerProcess, path: str, suffix: str) -> None:
    reply = get(f"{server.url}{path}{suffix}", key=None)
    assert reply.status < 500, reply.body
    if reply.status >= 400:
        assert reply.json()["error"]["code"]
    assert get(f"{server.url}/health", key=None).json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_a_bad_key_does_not_matter_where_none_is_needed(server: ServerProcess, path: str) -> None:
    assert get(f"{server.url}{path}", key="not-a-key").status == 200
