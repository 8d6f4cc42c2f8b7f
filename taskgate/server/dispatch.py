"""From a request to its handler: the dialects' route tables, served by one ASGI app.

Each dialect package keeps one table (`taskgate/api/<dialect>/routes.py`): `Endpoint` entries, or
for v3 their richer form, `Operation`, which adds the schemas of the OpenAPI document. `App`
serves the routes they make; why it is shaped as it is (the dict look-up for fixed paths, no
middleware, the frozen heap) is in `taskgate.server`'s docstring.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

from taskgate.errors import MethodNotAllowedError, NotFoundError, TaskgateError
from taskgate.server.access_log import REQUEST_OBSERVER, log_access
from taskgate.server.request_io import Handler, error_response, guarded

Ctx = TypeVar("Ctx")  # what the handlers work with (the app's context); the server layer need not know it


@dataclass(frozen=True, slots=True)
class Endpoint(Generic[Ctx]):
    """One entry of a dialect's route table: a method and a path, and the handler answering them."""

    method: str
    path: str
    handler: Callable[[Ctx, Request], Awaitable[Response]]


def endpoint_routes(ctx: Ctx, table: Iterable[Endpoint[Ctx]]) -> list[BaseRoute]:
    """The table as routes: each handler given the app, its errors turned into their wire body and
    its access line written by `guarded`."""
    return [Route(entry.path, guarded(functools.partial(entry.handler, ctx)), methods=[entry.method],
                  name=entry.handler.__name__) for entry in table]


Wiring = Callable[["App"], AbstractAsyncContextManager[None]]
RequestObserver = Callable[[Scope, int, float, "str | None"], None]  # (scope, status, seconds, route)
UNMATCHED = "unmatched"  # the route of a request no route matched


class App:
    """The ASGI app: a request for a fixed path goes to its handler from one dict look-up; anything
    else (paths with parameters, a wrong method, an unknown path, anything under a root path) goes
    through Starlette's router, whose 404 and 405 are JSON error bodies.

    `wiring` is the application's lifespan: it builds what the handlers need, mounts the dialects'
    routes and yields while the server runs. Once it has started, the fixed paths are indexed and
    the heap it built is frozen.
    """

    def __init__(self, wiring: Wiring) -> None:
        self.router = Router(default=not_found, lifespan=self._lifespan)
        self._wiring = wiring
        self._handlers: dict[tuple[str, str], Handler] = {}
        # Told of every request's route, status and seconds (the metrics), through the access log.
        self.observe_request: RequestObserver | None = None

    def mount(self, routes: Iterable[BaseRoute]) -> None:
        """Add routes after those already mounted: routes are matched in order."""
        self.router.routes.extend(JSONRoute.of(route) for route in routes)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: object) -> AsyncIterator[None]:
        async with self._wiring(self):
            self._index()
            # Everything loaded so far (libraries, tables, caches, the wiring) lives as long as the
            # process: keep it out of the collector's sight, so a full collection never walks it.
            gc.collect()
            gc.freeze()
            yield

    def _index(self) -> None:
        for route in self.router.routes:
            if isinstance(route, Route) and not route.param_convertors and inspect.iscoroutinefunction(route.endpoint):
                for method in route.methods or ():
                    self._handlers.setdefault((method, route.path), route.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.observe_request is not None:
            scope[REQUEST_OBSERVER] = self.observe_request
        if scope["type"] == "http" and not scope.get("root_path"):
            handler = self._handlers.get((scope["method"], scope["path"]))
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.router(scope, receive, send)


class JSONRoute(Route):
    """A Route whose wrong method gets `method_not_allowed` rather than Starlette's text/plain 405,
    whose `Allow` would list only this route's methods even where another route serves the path."""

    @classmethod
    def of(cls, route: BaseRoute) -> BaseRoute:
        if type(route) is not Route:
            return route
        return cls(route.path, route.endpoint, methods=route.methods, name=route.name)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            await method_not_allowed(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = Request(scope).url.path
    await _answer(scope, receive, send, NotFoundError(f"no such endpoint: {scope['method']} {path}"), UNMATCHED)


async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    """The JSON 405, its `Allow` listing the methods of every route whose path matches."""
    router: Router = scope["router"]
    allowed = {method for route in router.routes if isinstance(route, Route) and route.methods
               and route.matches(scope)[0] is not Match.NONE for method in route.methods}
    await _answer(scope, receive, send, MethodNotAllowedError(scope["method"], Request(scope).url.path, allowed))


async def _answer(scope: Scope, receive: Receive, send: Send, error: TaskgateError, route: str | None = None) -> None:
    start = time.perf_counter()
    response = error_response(error)
    await response(scope, receive, send)
    log_access(scope, response.status_code, start, route)
