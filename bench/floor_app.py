"""The floor: the least a Python pass-through on uvicorn can cost, measured next to Taskgate.

A bare ASGI app on the same server stack as `taskgate serve` (uvicorn, uvloop, httptools through
Taskgate's head-with-body protocol, no access log) that reads the body, makes the one upstream call
over a pooled aiohttp session, and answers.
No auth, no validation, no spans, no retries: whatever Taskgate adds over this is Taskgate's own.

- `POST /v2/call`: posts the chat body Taskgate would send (bench.common.upstream_body, so the fake
  does the same work) and answers `{"span_id", "message"}`;
- `POST /v2/call/stream`: the same with `stream: true`, the fake's SSE relayed chunk by chunk;
- `POST /v3/compat/chat/completions`: the body forwarded with the provider prefix cut from `model`,
  the fake's answer returned as is (relayed chunk by chunk when the body asks for `stream: true`);
- `GET` anything: 200, for readiness polling.

    BENCH_FLOOR_UPSTREAM=http://127.0.0.1:9911/openai/v1/chat/completions \\
        python -m bench.floor_app --port 9912
"""

from __future__ import annotations

import argparse
import gc
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
import uvicorn

from bench.common import UPSTREAM_KEY, upstream_body
from taskgate.server.protocol import HeadWithBodyProtocol

UPSTREAM_ENV = "BENCH_FLOOR_UPSTREAM"
UPSTREAM_URL = os.environ.get(UPSTREAM_ENV, "")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_UPSTREAM_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {UPSTREAM_KEY}"}
_session: aiohttp.ClientSession | None = None


def session() -> aiohttp.ClientSession:
    """One pooled keep-alive session for the process, made on first use (inside the running loop)."""
    global _session
    if _session is None:
        connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=120)
        _session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                         headers=_UPSTREAM_HEADERS)
    return _session


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = _JSON_HEADERS) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def relay_stream(send: Send, upstream: aiohttp.ClientResponse) -> None:
    """The fake's SSE bytes, passed on as they arrive."""
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    async for chunk in upstream.content.iter_any():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            # As `taskgate serve` does once started, so that neither pays for collecting its imports.
            gc.collect()
            gc.freeze()
            await send({"type": "lifespan.startup.complete"})
        if _session is not None:
            await _session.close()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await answer(send, 200, b'{"ok":true}')
        return
    body = orjson.loads(await read_body(receive))
    path = scope["path"]
    if path in ("/v2/call", "/v2/call/stream"):
        stream = path == "/v2/call/stream"
        upstream = upstream_body(body, stream=stream)
    elif path == "/v3/compat/chat/completions":
        stream = body.get("stream") is True
        upstream = {**body, "model": body["model"].rpartition("/")[2]}
    else:
        await answer(send, 404, b'{"error":"not found"}')
        return
    async with session().post(UPSTREAM_URL, data=orjson.dumps(upstream)) as response:
        if response.status != 200:
            await answer(send, response.status, await response.read())
        elif stream:
            await relay_stream(send, response)
        elif path == "/v2/call":
            reply = orjson.loads(await response.read())
            message = reply["choices"][0]["message"]["content"]
            await answer(send, 200, orjson.dumps({"span_id": str(uuid.uuid4()), "message": message}))
        else:
            await answer(send, 200, await response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if not UPSTREAM_URL:
        raise SystemExit(f"set {UPSTREAM_ENV} to the fake upstream's chat completions URL")
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http=HeadWithBodyProtocol, access_log=False,
                proxy_headers=False, server_header=False, log_level="warning")


if __name__ == "__main__":
    main()
