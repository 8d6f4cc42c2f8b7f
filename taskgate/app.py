"""Wiring: the store, span recorder, providers and engine behind the three HTTP dialects.

The ASGI app is a bare Starlette Router: the dialects' handlers already turn every error into its
wire body and log their own access line, so middlewares would only add cost to every send. In
front of it, requests for a fixed path (every call endpoint) go straight to their handler.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from taskgate.api.openai import routes as compat
from taskgate.api.v2 import calls as v2
from taskgate.api.v2 import spans as v2_spans
from taskgate.api.v3 import operations as v3
from taskgate.config import Settings
from taskgate.context import AppContext
from taskgate.engine.cost import PriceBook
from taskgate.engine.engine import Engine
from taskgate.engine.limits import CallLimits
from taskgate.errors import MethodNotAllowedError, NotFoundError, TaskgateError
from taskgate.providers.registry import ProviderRegistry
from taskgate.server.access_log import flush_log, log_access
from taskgate.server.auth import Authenticator
from taskgate.server.request_io import Handler, error_response
from taskgate.store import open_store
from taskgate.store.database import private_directory
from taskgate.telemetry.periodic import every
from taskgate.telemetry.recorder import SpanRecorder, peer_wait


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = Request(scope).url.path
    await _answer(scope, receive, send, NotFoundError(f"no such endpoint: {scope['method']} {path}"))


async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    """The JSON 405, its `Allow` listing the methods of every route whose path matches."""
    router: Router = scope["router"]
    allowed = {method for route in router.routes if isinstance(route, Route) and route.methods
               and route.matches(scope)[0] is not Match.NONE for method in route.methods}
    await _answer(scope, receive, send, MethodNotAllowedError(scope["method"], Request(scope).url.path, allowed))


async def _answer(scope: Scope, receive: Receive, send: Send, error: TaskgateError) -> None:
    start = time.perf_counter()
    response = error_response(error)
    await response(scope, receive, send)
    log_access(scope, response.status_code, start)


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


class ExactPaths:
    """Requests for a path without parameters go to their handler from one dict look-up.

    Starlette's router tries each route's pattern in turn and wraps every handler, and every send
    of its response, in its own exception handling; our handlers already answer every error
    themselves. Paths with parameters, a wrong method (405) and unknown paths (404) go on to the
    router, as does anything under a root path.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._handlers: dict[tuple[str, str], Handler] = {}

    def index(self) -> None:
        """Learn the fixed paths from the router's routes (call once they are all added)."""
        for route in self.router.routes:
            if isinstance(route, Route) and not route.param_convertors and inspect.iscoroutinefunction(route.endpoint):
                for method in route.methods or ():
                    self._handlers.setdefault((method, route.path), route.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            handler = self._handlers.get((scope["method"], scope["path"]))
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.router(scope, receive, send)


def create_app(settings: Settings) -> ASGIApp:
    router = Router(default=not_found)
    app = ExactPaths(router)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        private_directory(settings.data_dir)
        store = await open_store(settings.effective_database_url)
        shared_store = not settings.effective_database_url.startswith("sqlite")
        recorder = SpanRecorder(store, flush_interval=settings.span_flush_interval_s,
                                peer_wait_s=peer_wait(settings.span_flush_interval_s, shared_store))
        await recorder.start()
        auth = Authenticator(store)
        await auth.bootstrap(settings.api_keys)
        providers = ProviderRegistry(settings)
        limits = CallLimits(settings.max_attempts, settings.max_upstream_calls, settings.max_request_tokens)
        engine = Engine(store, recorder, providers, settings.default_model, limits)
        ctx = AppContext(settings, auth, engine)
        for module in (v2, compat, v3, v2_spans):  # the call endpoints first: routes are matched in order
            router.routes.extend(JSONRoute.of(route) for route in module.routes(ctx))
        app.index()
        PriceBook.warm()
        # Everything loaded so far (libraries, the price table) lives as long as the process: keep
        # it out of the collector's sight, so a full collection never stalls a request on it.
        gc.collect()
        gc.freeze()
        try:
            async with every(0.25, flush_log), every(2.0, engine.functions.flush_hits):
                yield
        finally:
            await recorder.close()  # spans already accepted are written before exit
            await providers.aclose()
            await store.close()

    router.lifespan_context = lifespan
    return app
