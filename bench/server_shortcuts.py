"""What each of `taskgate.server`'s request-path shortcuts saves, against what it replaces.

In process, no server, no network: each pair runs the same request through the shortcut and
through the plain Starlette way, alternately, and prints the median µs per request of each.

1. dispatch: `POST` to a fixed path through `dispatch.App` (one dict look-up) and through the
   Starlette router behind it (a pattern match per route until one fits, and its exception
   wrappers), with Taskgate's own route tables (every handler replaced by one that answers at once);
2. the request head and body: `header_map` and `read_body` against Starlette's `Headers` and
   `Request.body()`, for a 2 KB body that arrives in one message, with the four header look-ups
   a call makes;
3. the collector: a full collection of Taskgate's modules and price table, as `taskgate serve`
   holds them once started (its store and connections add to that), before and after `gc.freeze()`.

    .venv/bin/python -m bench.server_shortcuts [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Scope

from bench.common import collector_paused
from taskgate.api.openai import routes as openai
from taskgate.api.v2 import routes as v2
from taskgate.api.v3 import routes as v3
from taskgate.engine.cost import PriceBook
from taskgate.server.dispatch import App
from taskgate.server.request_io import header_map, read_body

BODY = b'{"name": "bench", "input": "' + b"x" * 2000 + b'"}'
HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"python-httpx/0.28"), (b"accept", b"*/*"),
           (b"accept-encoding", b"gzip, deflate"), (b"connection", b"keep-alive"),
           (b"content-type", b"application/json"), (b"authorization", b"Bearer tg_0123456789abcdef"),
           (b"content-length", str(len(BODY)).encode())]
LOOKED_UP = ("authorization", "content-length", "x-opper-parent-span-id", "traceparent")
_ANSWER = Response(b"{}", media_type="application/json")


async def _answer(request: Request) -> Response:
    return _ANSWER


async def _receive() -> Message:
    return {"type": "http.request", "body": BODY, "more_body": False}


async def _send(message: Message) -> None:
    return None


def _scope(path: str) -> Scope:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": HEADERS, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


def _answering(route: BaseRoute) -> BaseRoute:
    """The route with a handler that answers at once (the v3 function dispatcher is left as it is)."""
    if isinstance(route, Route) and inspect.iscoroutinefunction(route.endpoint):
        return Route(route.path, _answer, methods=route.methods)
    return route


async def _served_app() -> App:
    """Taskgate's routes, mounted and indexed as at start-up (which also freezes the heap)."""

    @contextlib.asynccontextmanager
    async def wiring(app: App) -> AsyncIterator[None]:
        for dialect in (v2, openai, v3):
            app.mount(_answering(route) for route in dialect.routes(None))
        yield

    app = App(wiring)
    async with app.router.lifespan_context(None):
        return app


async def _median_us(run: Callable[[], Awaitable[object]], requests: int) -> float:
    samples = []
    for _ in range(requests):
        start = time.perf_counter_ns()
        await run()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


async def _pair(name: str, shortcut: Callable[[], Awaitable[object]], plain: Callable[[], Awaitable[object]],
                requests: int) -> None:
    rounds = 5
    fast, slow = [], []
    for _ in range(rounds):  # alternated, so that a noisy moment lands on both sides
        fast.append(await _median_us(shortcut, requests // rounds))
        slow.append(await _median_us(plain, requests // rounds))
    a, b = statistics.median(fast), statistics.median(slow)
    print(f"  {name:<44} {a:7.2f} µs   plain {b:7.2f} µs   saves {b - a:6.2f} µs")


async def dispatch(app: App, requests: int) -> None:
    print("(1) dispatch, per request (handler answers at once)")
    for path in ("/v2/call", "/v3/compat/chat/completions", "/v3/call"):
        scope = _scope(path)

        async def exact(scope: Scope = scope) -> None:
            await app(dict(scope), _receive, _send)

        async def routed(scope: Scope = scope) -> None:
            await app.router(dict(scope), _receive, _send)

        await _pair(f"POST {path}", exact, routed, requests)


async def head_and_body(requests: int) -> None:
    print("(2) request head and body, per request")

    async def ours() -> None:
        request = Request(_scope("/v2/call"), _receive)
        headers = header_map(request)
        for name in LOOKED_UP:
            headers.get(name)
        await read_body(request, 1 << 20)

    async def starlettes() -> None:
        request = Request(_scope("/v2/call"), _receive)
        headers = request.headers
        for name in LOOKED_UP:
            headers.get(name)
        await request.body()

    await _pair("4 header look-ups and a 2 KB body", ours, starlettes, requests)


def collector() -> None:
    print("(3) a full collection of the started server's heap")
    PriceBook.warm()
    gc.collect()
    objects = len(gc.get_objects())

    def full_ms() -> float:
        """CPU time rather than wall time: the machine's other load does not count."""
        samples = []
        for _ in range(7):
            start = time.process_time()
            gc.collect()
            samples.append((time.process_time() - start) * 1000)
        return statistics.median(samples)

    before = full_ms()
    gc.freeze()
    after = full_ms()
    gc.unfreeze()
    print(f"  {objects} objects tracked: {before:.1f} ms of CPU unfrozen, {after:.2f} ms once frozen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    app = asyncio.run(_served_app())
    gc.unfreeze()
    with collector_paused():
        asyncio.run(dispatch(app, args.requests))
        asyncio.run(head_and_body(args.requests))
    collector()


if __name__ == "__main__":
    main()
