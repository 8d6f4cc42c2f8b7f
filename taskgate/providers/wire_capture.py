"""The raw provider exchanges of a call, captured where every adapter's HTTP goes through
(`UpstreamHTTP.post_json` and `open_sse`), never in the adapters themselves.

The engine marks the call an upstream request belongs to with `capturing(scope)` around its
router calls; the HTTP layer reads that mark once, when the request starts (`begin`), so a stream
read over many later steps still knows its call. Without a mark (an adapter used on its own) there
is nothing to capture and nothing is spent.

What is kept: the body sent (the very bytes, already encoded for the wire), the body received (a
stream's raw bytes as they came, up to MAX_CAPTURE_BYTES; the rest is counted as cut), and the
status or transport error. Headers are never kept, so no API key or authorization can end up in a
record. On the request path this costs a few attribute writes and list appends;
encoding and storing happen later, in the recorder's batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from taskgate.errors import TaskgateError

MAX_CAPTURE_BYTES = 64 * 1024  # of a stream's events, and what the store keeps of each body


@dataclass(slots=True)
class Exchange:
    """One upstream HTTP request and what came back."""

    scope: CaptureScope
    provider: str
    path: str
    model: str | None  # the body's `model`, as the vendor was asked
    request: bytes  # the JSON body as sent
    stream: bool
    started_at: float  # time.time(): a datetime is made off the request path, when it is stored
    clock: float
    status: int | None = None
    response: bytes | None = None  # a whole body (JSON, or an error's text)
    chunks: list[bytes] = field(default_factory=list)  # a stream's body, as read
    chunks_size: int = 0
    chunks_cut: bool = False
    error: str | None = None
    duration_ms: int = 0

    def add_chunk(self, chunk: bytes) -> None:
        """Keep a read of a stream's body, while the bound allows (a cut read is kept in part)."""
        room = MAX_CAPTURE_BYTES - self.chunks_size
        if room <= 0 or len(chunk) > room:
            self.chunks_cut = True
            chunk = chunk[:max(room, 0)]
        if chunk:
            self.chunks_size += len(chunk)
            self.chunks.append(chunk)

    def finish(self, *, status: int | None = None, response: bytes | None = None, error: str | None = None) -> None:
        """Hand the exchange to its call's sink; the first finish counts."""
        if self.duration_ms:
            return
        self.duration_ms = max(1, round((time.perf_counter() - self.clock) * 1000))
        self.status = status if status is not None else self.status
        self.response = response if response is not None else self.response
        self.error = error
        self.scope.sink(self)


class CaptureScope(NamedTuple):
    """The call upstream requests belong to, and where their exchanges go. Immutable, and a tuple
    rather than a frozen dataclass: one is made per call, and a frozen dataclass's __init__ costs
    three times as much."""

    project_id: str
    span_id: str
    trace_id: str
    sink: Callable[[Exchange], None]


_SCOPE: ContextVar[CaptureScope | None] = ContextVar("taskgate_capture_scope", default=None)


class capturing:
    """Upstream requests started inside the block are captured for `scope` (None: not captured).
    Set and reset within one step of the caller, so it never leaks into another call's context.
    A class rather than `contextlib.contextmanager`: the generator-based form cost 4 µs a call."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: CaptureScope | None) -> None:
        self._scope = scope
        self._token: Token[CaptureScope | None] | None = None

    def __enter__(self) -> None:
        if self._scope is not None:
            self._token = _SCOPE.set(self._scope)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _SCOPE.reset(self._token)
            self._token = None


def begin(provider: str, path: str, body: Mapping[str, Any], request: bytes, *, stream: bool) -> Exchange | None:
    """A new exchange for the call in scope (`request` is `body` encoded), or None when no call is
    being captured."""
    scope = _SCOPE.get()
    if scope is None:
        return None
    model = body.get("model")
    return Exchange(scope, provider, path, model if isinstance(model, str) else None, request, stream,
                    time.time(), time.perf_counter())


def begin_built(provider: str, path: str, build: Callable[[], Mapping[str, Any]], *,
                stream: bool) -> Exchange | None:
    """`begin` for an exchange with no wire of its own (the in-process local model): its body is
    built and encoded only when a call is being captured."""
    if _SCOPE.get() is None:
        return None
    body = build()
    return begin(provider, path, body, orjson.dumps(body, default=str), stream=stream)


def failure_text(failure: BaseException | None) -> str | None:
    """How a captured exchange ended when it did not end well."""
    if failure is None:
        return None
    if isinstance(failure, TaskgateError):
        return failure.detail
    return f"stopped ({type(failure).__name__})"
