"""Pooled upstream HTTP for the provider adapters: one keep-alive aiohttp session per upstream.

Everything that can go wrong on the wire is turned into `taskgate.errors` here, once, so the
adapters only translate shapes. SSE is decoded from raw chunks (not `readline`), which costs one
await per TCP read instead of one per line and has no line-length ceiling. Events are handed on in
the batches one read delivered, so an adapter can pass on what arrived together as one piece.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from taskgate.errors import (
    BadRequestError,
    ProviderError,
    TaskgateError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    classify_upstream_status,
)
from taskgate.providers.base import ChatChunk, PieceReader
from taskgate.providers.wire_capture import Exchange, begin, failure_text

# What a caller's `extra_headers` may never set: credentials (the adapter's own above all), the
# upstream's identity and the body's framing, and hop-by-hop headers (RFC 9110 §7.6.1: they
# belong to one connection, and would let a caller desynchronise the pooled one). `Proxy-*` too.
PROTECTED_HEADERS = frozenset({
    "authorization", "x-api-key", "api-key", "host", "content-length", "connection", "keep-alive", "te",
    "trailer", "transfer-encoding", "upgrade",
})


def is_protected_header(name: str) -> bool:
    """Whether `name` (any case) is one a caller may not set on an upstream request."""
    lowered = name.lower()
    return lowered in PROTECTED_HEADERS or lowered.startswith("proxy-")


POOL_LIMIT = 256  # concurrent connections per upstream
KEEPALIVE_S = 30.0
TAIL_WAIT_S = 2.0  # how long a finished stream's last bytes may take before its connection is dropped
TAIL_LIMIT = 64 * 1024  # more than this after the stream's end is not a tail: drop the connection
ERROR_TEXT_LIMIT = 500


@dataclass(slots=True)
class SSEEvent:
    event: str  # "message" when the upstream names none
    data: bytes  # the data lines joined by "\n"


class SSEDecoder:
    """Incremental text/event-stream parser: feed raw bytes, get whole events back.

    Handles `\\n`, `\\r\\n` and bare `\\r` line ends (even split across reads), multi-line
    `data:`, `event:` names and `:` comments, as the WHATWG spec describes.
    """

    __slots__ = ("_buffer", "_data", "_event", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._pending_cr = False
        self._data: list[bytes] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            # It may be the first half of a "\r\n" that the next read completes.
            chunk = chunk[:-1]
            self._pending_cr = True
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """At end of stream: dispatch an event that lacked its closing blank line (lenient)."""
        events = self.feed(b"\n") if (self._buffer or self._pending_cr) else []
        event = self._line(b"")
        return [*events, event] if event is not None else events

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", b"\n".join(self._data))
            self._data = []
            self._event = ""
            return event
        if line[0] == 58:  # b":" a comment or keep-alive
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        return None


async def _release_after_tail(resp: aiohttp.ClientResponse) -> None:
    """Read what is left of a finished stream's body, then give its connection back to the pool;
    a tail that is long, slow or broken closes the connection instead."""
    try:
        with contextlib.suppress(Exception):  # whatever went wrong, the connection is closed below
            async with asyncio.timeout(TAIL_WAIT_S):
                size = 0
                while not resp.content.at_eof() and size <= TAIL_LIMIT:
                    size += len(await resp.content.readany())
    finally:
        if resp.content.at_eof():
            resp.release()
        else:
            resp.close()


def upstream_message(raw: bytes) -> str:
    """The upstream's own words from an error body (OpenAI, Anthropic and most others), else its text."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for value in (error, body.get("message"), body.get("detail")):
            if isinstance(value, str) and value:
                return value
    text = raw.decode("utf-8", "replace").strip()
    return text[:ERROR_TEXT_LIMIT] or "empty response body"


def event_object(data: bytes, provider: str) -> dict[str, Any]:
    """A stream event's JSON object; anything else is the upstream breaking its wire format."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"{provider}: stream event is not JSON: {data[:200]!r}") from exc
    if not isinstance(payload, dict):
        raise UpstreamProtocolError(f"{provider}: stream event is not an object: {data[:200]!r}")
    return payload


def request_timeout(options: Mapping[str, Any], default_s: float) -> float:
    """The per-request `timeout` option (seconds), else the configured default."""
    value = options.get("timeout")
    if value is None:
        return default_s
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BadRequestError(f"option 'timeout' must be a positive number of seconds, got {value!r}")
    return float(value)


def _call_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A whole request's deadline, its connect's too."""
    return aiohttp.ClientTimeout(total=seconds, connect=seconds)


def _stream_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A stream's: no total deadline, but its connect and every wait for the next bytes (`open_sse`)."""
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)


class UpstreamHTTP:
    """One upstream (a provider at one base URL) behind one lazily created, pooled session."""

    def __init__(self, provider: str, base_url: str, headers: Mapping[str, str], *, timeout_s: float,
                 query: tuple[tuple[str, str], ...] = ()):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._query = dict(query) or None  # the upstream's own query parameters, on every request
        self._headers = {"content-type": "application/json", **headers}
        self._own_headers = frozenset(name.lower() for name in self._headers)
        self._timeout_s = timeout_s  # when a request's options name no `timeout`
        # Immutable, so made once for every request at the default (building one costs about a µs).
        self._call_timeout = _call_timeout(timeout_s)
        self._stream_timeout = _stream_timeout(timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._tails: set[asyncio.Task[None]] = set()  # finished streams whose last bytes are still due

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use so that it binds to the running loop, not the import-time one.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=POOL_LIMIT, keepalive_timeout=KEEPALIVE_S, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), headers=self._headers
            )
        return self._session

    async def aclose(self) -> None:
        for tail in list(self._tails):
            tail.cancel()
        await asyncio.gather(*self._tails, return_exceptions=True)
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _caller_headers(self, headers: Mapping[str, str] | None) -> dict[str, str] | None:
        """A request's extra headers, less any this upstream sets itself (credentials, content type,
        API version) and any no caller may set (which the request parser refuses with a 400): aiohttp
        lets a request's headers replace the session's, so this keeps the adapter's own whatever
        reaches here."""
        if not headers:
            return None
        return {name: value for name, value in headers.items()
                if name.lower() not in self._own_headers and not is_protected_header(name)} or None

    async def post_json(
        self, path: str, body: dict[str, Any], options: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> Any:
        """POST a JSON body and return the decoded JSON answer, or raise the mapped error.

        `options` are the request's options, for its `timeout`; `headers` are added to the session's.
        """
        timeout_s = request_timeout(options, self._timeout_s)
        timeout = self._call_timeout if timeout_s == self._timeout_s else _call_timeout(timeout_s)
        payload = orjson.dumps(body)
        exchange = begin(self.provider, path, body, payload, stream=False)
        status: int | None = None
        raw = b""
        failure: BaseException | None = None
        try:
            async with self._client().post(
                self.base_url + path, data=payload, headers=self._caller_headers(headers), timeout=timeout,
                params=self._query
            ) as resp:
                status = resp.status
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._status_error(resp.status, raw)
        except TaskgateError as exc:
            failure = exc
            raise
        except Exception as exc:
            failure = self._transport_error(exc, timeout_s)
            raise failure from exc
        except BaseException as exc:  # cancelled: the exchange is recorded as such
            failure = exc
            raise
        finally:
            if exchange is not None:
                exchange.finish(status=status, response=raw if status is not None else None,
                                error=None if failure is None else failure_text(failure))
            failure = None  # the exception's traceback holds this frame: a cycle, left for the collector
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(
                f"{self.provider}: the response is not JSON: {raw[:200].decode('utf-8', 'replace')!r}"
            ) from exc

    @asynccontextmanager
    async def open_sse(
        self, path: str, body: dict[str, Any], options: Mapping[str, Any], headers: Mapping[str, str] | None = None,
        *, finished: Callable[[], bool],
    ) -> AsyncIterator[AsyncIterator[list[SSEEvent]]]:
        """POST and give back the response's SSE events, a batch per read (never an empty one);
        leaving the block releases the response.

        A stream has no total deadline (a long answer is not a hung one): the timeout bounds the
        connect and every wait for the next bytes. Leaving early closes the connection, so the
        upstream sees the disconnect and stops generating. Leaving once `finished()` (the adapter
        has read the stream's own last event) keeps the connection for the next request: the body's
        last bytes (the chunked terminator) often come in a later read, and dropping a connection
        for them would cost the next request a new one.
        """
        timeout_s = request_timeout(options, self._timeout_s)
        timeout = self._stream_timeout if timeout_s == self._timeout_s else _stream_timeout(timeout_s)
        payload = orjson.dumps(body)
        exchange = begin(self.provider, path, body, payload, stream=True)
        failure: BaseException | None = None
        try:
            resp = await self._client().post(
                self.base_url + path, data=payload, headers=self._caller_headers(headers), timeout=timeout,
                params=self._query
            )
        except Exception as exc:
            failure = self._transport_error(exc, timeout_s)
            raise failure from exc
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if exchange is not None and failure is not None:
                exchange.finish(error=failure_text(failure))
            failure = None  # see post_json
        raw: bytes | None = None
        try:
            if resp.status >= 400:
                raw = await self._read_error_body(resp, timeout_s)
                raise self._status_error(resp.status, raw)
            if resp.content_type == "application/json":
                raw = await self._read_error_body(resp, timeout_s)
                raise UpstreamProtocolError(
                    f"{self.provider}: expected an event stream, got JSON: {upstream_message(raw)}"
                )
            yield self._events(resp, timeout_s, exchange)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if exchange is not None:
                exchange.finish(status=resp.status, response=raw, error=failure_text(failure))
            failure = None  # see post_json
            if resp.content.at_eof():
                resp.release()
            elif finished():
                tail = asyncio.get_running_loop().create_task(_release_after_tail(resp))
                self._tails.add(tail)
                tail.add_done_callback(self._tails.discard)
            else:
                resp.close()

    async def stream_pieces(
        self, path: str, body: dict[str, Any], options: Mapping[str, Any], headers: Mapping[str, str] | None,
        *, pieces_of: Callable[[SSEEvent], list[ChatChunk]], finished: Callable[[], bool], last_event: str,
    ) -> AsyncGenerator[ChatChunk, None]:
        """Every adapter's stream loop: POST, then the pieces `pieces_of` makes of each event, read
        through a `PieceReader`, until `finished()`. A stream that ends before its wire format's
        last event (`last_event`, named in the error) was cut short."""
        reader = PieceReader(pieces_of, finished)
        async with self.open_sse(path, body, options, headers, finished=finished) as batches:
            async for batch in batches:
                for piece in reader.read(batch):
                    yield piece
                if finished():
                    return
        raise UpstreamProtocolError(f"{self.provider}: stream ended early (no {last_event})")

    async def _events(self, resp: aiohttp.ClientResponse, timeout_s: float,
                      exchange: Exchange | None) -> AsyncIterator[list[SSEEvent]]:
        decoder = SSEDecoder()
        try:
            async for chunk in resp.content.iter_any():
                if exchange is not None:
                    exchange.add_chunk(chunk)
                if events := decoder.feed(chunk):
                    yield events
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamProtocolError(f"{self.provider}: stream ended early: {exc}") from exc
        except Exception as exc:
            raise self._transport_error(exc, timeout_s) from exc
        if events := decoder.flush():
            yield events

    async def _read_error_body(self, resp: aiohttp.ClientResponse, timeout_s: float) -> bytes:
        try:
            return await resp.read()
        except Exception as exc:
            raise self._transport_error(exc, timeout_s) from exc

    def _status_error(self, status: int, raw: bytes) -> TaskgateError:
        return classify_upstream_status(status, f"{self.provider}: {upstream_message(raw)}")

    def _transport_error(self, exc: BaseException, timeout_s: float) -> TaskgateError:
        if isinstance(exc, TaskgateError):
            return exc
        if isinstance(exc, TimeoutError):
            return UpstreamTimeoutError(f"{self.provider}: no answer within {timeout_s:g}s")
        if isinstance(exc, aiohttp.ClientError | OSError):
            return ProviderError(f"{self.provider}: cannot reach {self.base_url}: {exc}")
        if isinstance(exc, ValueError):
            return UpstreamProtocolError(f"{self.provider}: unreadable response: {exc}")
        raise exc
