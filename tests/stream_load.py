"""Many concurrent streamed calls over raw connections: the Load test and `bench.memory` share it.

Each stream is one connection (`Connection: close`), read to its end; it counts as a success only
when the answer is a 200 whose chunked body ends cleanly and carries at least one delta.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson


def stream_request(url: str, key: str, body: dict[str, object]) -> bytes:
    parts = urlsplit(url)
    payload = orjson.dumps(body)
    return (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            ).encode() + payload


async def one_stream(url: str, request: bytes, timeout_s: float) -> str | None:
    """None when the stream was answered whole, else what went wrong."""
    parts = urlsplit(url)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), timeout_s)
        try:
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), timeout_s)
        finally:
            writer.close()
    except (OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if not answer.startswith(b"HTTP/1.1 200"):
        return answer[:200].decode(errors="replace")
    if not answer.endswith(b"0\r\n\r\n") or b'"delta"' not in answer:
        return f"incomplete stream: {answer[-200:]!r}"
    return None


async def concurrent_streams(url: str, key: str, body: dict[str, object], count: int,
                             timeout_s: float = 120.0) -> list[str]:
    """Open `count` streams at once; the failures, empty when every one was answered whole."""
    request = stream_request(url, key, body)
    outcomes = await asyncio.gather(*(one_stream(url, request, timeout_s) for _ in range(count)))
    return [outcome for outcome in outcomes if outcome is not None]
