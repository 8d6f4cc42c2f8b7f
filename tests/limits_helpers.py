"""What the key-limit tests share: making keys through the admin API, and calling a model with one."""

from __future__ import annotations

import uuid
from typing import Any

from tests.harness import ServerProcess
from tests.http_client import KEY, Reply, get, post, request

CALL_MODEL = "openai/gpt-4o-mini"


def make_key(server: ServerProcess, admin_key: str = KEY, **body: Any) -> tuple[str, str]:
    """(id, secret) of a new key of the admin's project, with `body`'s limits."""
    reply = post(f"{server.url}/v2/admin/keys", {"name": f"k-{uuid.uuid4().hex[:8]}", **body}, key=admin_key)
    assert reply.status == 201, reply.body
    made = reply.json()
    return made["id"], made["key"]


def call(server: ServerProcess, key: str, model: str | list[str] = CALL_MODEL, name: str = "limited") -> Reply:
    """One v2 call (a fresh input each time: a cached answer would still count, but reads plainer)."""
    return post(f"{server.url}/v2/call", {"name": name, "input": f"hi {uuid.uuid4().hex[:6]}", "model": model},
                key=key)


def usage(server: ServerProcess, key_id: str, admin_key: str = KEY) -> dict[str, Any]:
    reply = get(f"{server.url}/v2/admin/keys/{key_id}/usage", key=admin_key)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def patch_key(server: ServerProcess, key_id: str, body: Any, admin_key: str = KEY) -> Reply:
    return request("PATCH", f"{server.url}/v2/admin/keys/{key_id}", body, key=admin_key)
