"""A tiny blocking HTTP client for tests (stdlib only), so tests talk to the real server over TCP."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KEY = "test-key"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(method: str, url: str, body: Any = None, *, key: str | None = KEY, raw: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 60) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request(method, path, body=payload, headers=sent)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)


def post(url: str, body: Any = None, **kw: Any) -> Reply:
    return request("POST", url, body, **kw)


def get(url: str, **kw: Any) -> Reply:
    return request("GET", url, **kw)


def sse_events(reply: Reply) -> list[str]:
    """The raw `data:` payloads of an SSE body, in order (comments and event names dropped)."""
    text = reply.body.decode()
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")]
        if data:
            out.append("\n".join(data))
    return out
