"""A fake LLM upstream on loopback, speaking the real OpenAI and Anthropic wire formats.

Tests point Taskgate's provider base URLs at it and script its answers per model; benchmarks run
it in the foreground as the baseline upstream (`python -m tests.fakes.provider --port 9911`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import anthropic_wire, openai_wire, rerank_wire
from tests.fakes.common import Behaviour, pieces

__all__ = ["Behaviour", "FakeProvider", "RecordedRequest"]

_JSON = "application/json"
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
REJECTED_MODEL = "reject-model"


@dataclass(slots=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    json: Any  # the parsed body, or None when it was not JSON
    model: str | None
    client_port: int  # the connection it came on: a new port is a new connection


class FakeProvider:
    """Both fake upstreams in one aiohttp server, run on its own event loop in a daemon thread."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", stream_events: int | None = None,
                 record: bool = True):
        self.host = host
        self.port = port
        self.record = record
        self.stream_events = stream_events
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0  # requests (streamed, or waiting out a scripted delay) whose client left first
        self._scripts: dict[str, deque[Behaviour]] = {}
        self._lock = threading.Lock()
        self._disconnected = threading.Condition(self._lock)
        self._seq = itertools.count(1)
        self._default_texts: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ----- test API -----

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/openai/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"{self.url}/anthropic"

    def rerank_base_url(self, vendor: str) -> str:
        """A base URL whose `/rerank` answers like `vendor`'s: `cohere` (v2, search units) or any
        other name (v1, tokens: Jina, Together, vLLM)."""
        return f"{self.url}/cohere/v2" if vendor == "cohere" else f"{self.url}/{vendor}/v1"

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Queue answers for `model`, one per request, first in first out; then the default resumes."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def clear(self) -> None:
        """Forget recorded requests, queued scripts and the disconnect count."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self.disconnects = 0

    def wait_disconnects(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` streams were dropped by their client; False if that did not happen in time."""
        with self._disconnected:
            return self._disconnected.wait_for(lambda: self.disconnects >= count, timeout)

    def default_text(self, model: str) -> str:
        """The greeting a model answers with when nothing is scripted or asked for."""
        text = self._default_texts.get(model)
        if text is None:
            text = f"Hello from {model}! This is a fake reply."
            if self.stream_events:
                words = pieces(text)
                text = "".join(words[i % len(words)] for i in range(self.stream_events))
            self._default_texts[model] = text
        return text

    # ----- lifecycle -----

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/openai/v1/chat/completions", self._openai_chat)
        app.router.add_post("/openai/v1/embeddings", self._openai_embeddings)
        app.router.add_post("/openai/v1/images/generations", self._openai_images)
        app.router.add_post("/anthropic/v1/messages", self._anthropic_messages)
        app.router.add_post("/cohere/v2/rerank", self._cohere_rerank)
        app.router.add_post("/{vendor}/v1/rerank", self._tokens_rerank)
        return app

    def start(self) -> None:
        """Serve in a daemon thread; returns once the port is bound (port 0 picks a free one)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._unbind())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> FakeProvider:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _bind(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _unbind(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def serve_forever(self) -> None:
        """Foreground mode for the CLI (the benchmarks' upstream)."""
        await self._bind()
        # What exists now lives as long as the process: keep full collections off it, so the
        # upstream the benchmarks time against does not stall a request on its own imports.
        gc.collect()
        gc.freeze()
        try:
            await asyncio.Event().wait()
        finally:
            await self._unbind()

    # ----- request plumbing -----

    async def _receive(self, request: web.Request) -> tuple[Any, Behaviour | None]:
        """Parse and record the body; pop the model's next scripted behaviour."""
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        if self.record:
            peer = request.transport.get_extra_info("peername") if request.transport is not None else None
            recorded = RecordedRequest(
                request.path, {k.lower(): v for k, v in request.headers.items()}, body,
                model if isinstance(model, str) else None, peer[1] if peer else 0,
            )
            with self._lock:
                self.requests.append(recorded)
        behaviour = None
        if self._scripts and isinstance(model, str):
            with self._lock:
                queue = self._scripts.get(model)
                if queue:
                    behaviour = queue.popleft()
        if behaviour is not None and behaviour.delay_s:
            try:
                await asyncio.sleep(behaviour.delay_s)
            except asyncio.CancelledError:  # the client dropped the connection before the answer
                self._note_disconnect()
                raise
        return body, behaviour

    def _note_disconnect(self) -> None:
        with self._disconnected:
            self.disconnects += 1
            self._disconnected.notify_all()

    async def _stream(self, request: web.Request, events: list[bytes], behaviour: Behaviour | None,
                      error_event: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        try:
            if behaviour is None:
                for event in events:
                    await response.write(event)
            else:
                await self._scripted_stream(request, response, events, behaviour, error_event)
                if request.transport is None or request.transport.is_closing():
                    return response
                await asyncio.sleep(behaviour.end_delay_s)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self._note_disconnect()
            raise
        return response

    @staticmethod
    async def _scripted_stream(request: web.Request, response: web.StreamResponse, events: list[bytes],
                               behaviour: Behaviour, error_event: bytes) -> None:
        for count, event in enumerate(events):
            if behaviour.cut_after is not None and count >= behaviour.cut_after:
                if request.transport is not None:
                    request.transport.close()
                return
            if behaviour.fail_after is not None and count >= behaviour.fail_after:
                await response.write(error_event)
                return
            if behaviour.event_delay_s:
                await asyncio.sleep(behaviour.event_delay_s)
            await response.write(event)

    @staticmethod
    def _failure(behaviour: Behaviour, body_for: Any) -> web.Response | None:
        """The scripted malformed body or error status, if the behaviour asks for one."""
        if behaviour.raw_body is not None:
            return web.Response(body=behaviour.raw_body, status=behaviour.status, content_type=_JSON)
        if behaviour.status != 200:
            headers = {"retry-after": behaviour.retry_after} if behaviour.status == 429 else None
            return web.Response(body=body_for(behaviour.status), status=behaviour.status,
                                content_type=_JSON, headers=headers)
        return None

    # ----- OpenAI -----

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._receive(request)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key. You need to provide your API key in an "
                                      "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        problem = openai_wire.request_problem(body)
        if problem:
            return _openai_error(400, problem)
        if body["model"] == REJECTED_MODEL:
            return web.Response(body=openai_wire.unknown_model_body(body["model"]), status=404, content_type=_JSON)
        if behaviour is not None and (failure := self._failure(behaviour, openai_wire.error_body)):
            return failure
        reply = openai_wire.chat_reply(body, behaviour, self.default_text(body["model"]), next(self._seq))
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            return await self._stream(request, reply.events(include_usage), behaviour, openai_wire.STREAM_ERROR)
        return web.Response(body=reply.body(), content_type=_JSON)

    async def _openai_embeddings(self, request: web.Request) -> web.Response:
        body, behaviour = await self._receive(request)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.")
        if isinstance(body, dict) and body.get("model") == REJECTED_MODEL:
            return web.Response(body=openai_wire.unknown_model_body(body["model"]), status=404, content_type=_JSON)
        if behaviour is not None and (failure := self._failure(behaviour, openai_wire.error_body)):
            return failure
        status, payload = openai_wire.embeddings_body(body)
        return web.Response(body=payload, status=status, content_type=_JSON)

    # ----- rerank -----

    async def _cohere_rerank(self, request: web.Request) -> web.Response:
        return await self._rerank(request, "search_units")

    async def _tokens_rerank(self, request: web.Request) -> web.Response:
        return await self._rerank(request, "tokens")

    async def _rerank(self, request: web.Request, billing: str) -> web.Response:
        body, behaviour = await self._receive(request)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.")
        if isinstance(body, dict) and body.get("model") == REJECTED_MODEL:
            return web.Response(body=openai_wire.unknown_model_body(body["model"]), status=404, content_type=_JSON)
        if behaviour is not None and (failure := self._failure(behaviour, openai_wire.error_body)):
            return failure
        status, payload = rerank_wire.rerank_body(body, billing)
        return web.Response(body=payload, status=status, content_type=_JSON)

    async def _openai_images(self, request: web.Request) -> web.Response:
        body, behaviour = await self._receive(request)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.")
        if behaviour is not None and (failure := self._failure(behaviour, openai_wire.error_body)):
            return failure
        status, payload = openai_wire.images_body(body)
        return web.Response(body=payload, status=status, content_type=_JSON)

    # ----- Anthropic -----

    async def _anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._receive(request)
        if refused := anthropic_wire.header_problem(request.headers):
            return web.Response(body=refused[1], status=refused[0], content_type=_JSON)
        problem = anthropic_wire.request_problem(body)
        if problem:
            return web.Response(body=anthropic_wire.error_body(400, problem), status=400, content_type=_JSON)
        if body["model"] == REJECTED_MODEL:
            return web.Response(body=anthropic_wire.unknown_model_body(body["model"]), status=404,
                                content_type=_JSON)
        if behaviour is not None and (failure := self._failure(behaviour, anthropic_wire.error_body)):
            return failure
        reply = anthropic_wire.message_reply(body, behaviour, self.default_text(body["model"]), next(self._seq))
        if body.get("stream") is True:
            return await self._stream(request, reply.events(), behaviour, anthropic_wire.STREAM_ERROR)
        return web.Response(body=reply.body(), content_type=_JSON)


def _openai_error(status: int, message: str) -> web.Response:
    return web.Response(body=openai_wire.error_body(status, message), status=status, content_type=_JSON)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI + Anthropic upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9911)
    parser.add_argument("--stream-events", type=int, default=None,
                        help="content deltas in a default streamed reply (default: one per word of the greeting)")
    args = parser.parse_args(argv)
    fake = FakeProvider(args.port, host=args.host, stream_events=args.stream_events, record=False)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(f"fake provider on http://{args.host}:{args.port} "
          f"(OPENAI_BASE_URL={fake.openai_base_url} ANTHROPIC_BASE_URL={fake.anthropic_base_url})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        runner(fake.serve_forever())


if __name__ == "__main__":
    main()
