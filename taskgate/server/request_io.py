"""Thin request/response helpers shared by every dialect: JSON in and out, errors, size limits.

Kept free of pydantic on purpose: orjson and plain dicts are the cheapest path on a hot endpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import orjson
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from taskgate.engine.quotas.caller import settle, unsettled
from taskgate.errors import (
    BadRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    StoreUnavailableError,
    TaskgateError,
)
from taskgate.json_text import MAX_JSON_DEPTH, depth_over, inexact_integer
from taskgate.server.access_log import log_access
from taskgate.server.protocol import BODY_TIMEOUT_KEY

log = logging.getLogger("taskgate.api")

Handler = Callable[[Request], Awaitable[Response]]
MAX_SQL_INT = 2**31 - 1  # Postgres INTEGER, the narrowest integer column of either store
CLIENT_CLOSED_REQUEST = 499  # the access-log status, as nginx records it, of a client that left mid-request


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS, default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__float__"):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=_json_default)


def error_response(exc: TaskgateError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def guarded(handler: Handler) -> Handler:
    """Turn our errors into their wire body, anything unexpected into a logged 500 body, and log
    one access line per request (here rather than in a middleware, which would wrap every send)."""

    @wraps(handler)
    async def wrapper(request: Request) -> Response:
        start = time.perf_counter()
        try:
            response = await handler(request)
            if (updates := unsettled()) is not None:  # the call's spend reaches every replica's limit
                await settle(updates)  # checks before its answer goes out
        except TaskgateError as exc:
            response = error_response(exc)
        except ClientDisconnect:
            # Gone before its request was read: nobody to answer, nothing to log but the line.
            response = Response(status_code=CLIENT_CLOSED_REQUEST)
        except (OperationalError, InterfaceError) as exc:
            if not store_unavailable(exc):
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                response = error_response(TaskgateError("internal error; see the server log"))
            else:  # nothing about the request was wrong: the caller may try again after Retry-After
                log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
                response = error_response(StoreUnavailableError())
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = error_response(TaskgateError("internal error; see the server log"))
        log_access(request.scope, response.status_code, start)
        return response

    return wrapper


# SQLSTATE classes of a database that cannot serve now: connection exceptions, an operator's
# shutdown, insufficient resources. And what SQLite says of a file it cannot use at the moment.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")
_UNAVAILABLE_TEXTS = ("database is locked", "database is busy", "unable to open database", "disk i/o error",
                      "connection", "server closed")


def store_unavailable(exc: OperationalError | InterfaceError) -> bool:
    """Whether a store error means "down or busy, try again" (a 503) rather than a broken store (a
    dropped table, a bad statement: a 500 to look into)."""
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    text = str(exc.orig).lower()
    return any(marker in text for marker in _UNAVAILABLE_TEXTS)


_HEADERS_KEY = "taskgate.headers"


def header_map(request: Request) -> dict[str, str]:
    """The request's headers as a dict, made once per request (Starlette's `Headers` scans the
    whole list on every look-up). Of repeated headers the first wins, as with `Headers.get`."""
    headers: dict[str, str] | None = request.scope.get(_HEADERS_KEY)
    if headers is None:
        raw = request.scope["headers"]
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in reversed(raw)}
        request.scope[_HEADERS_KEY] = headers
    return headers


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing anything over `limit` bytes before reading it all, and answering
    408 when the protocol reports that the body stalled (see `taskgate.server.protocol`).

    Read from the ASGI messages themselves: Starlette's `stream()` is an async generator, which
    costs its own bookkeeping on every request.
    """
    declared = header_map(request).get("content-length")
    if declared is not None and (size := ascii_int(declared, max_digits=20)) is not None and size > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        if (stalled := request.scope.get(BODY_TIMEOUT_KEY)) is not None:
            raise RequestTimeoutError(stalled)


async def read_json(request: Request, limit: int) -> Any:
    return parse_json_body(await read_body(request, limit))


def parse_json_body(body: bytes) -> Any:
    """The body's JSON value, or a 400 when it is empty, not JSON, nested too deeply or holding an
    integer that would not be read exactly."""
    if not body.strip():
        raise BadRequestError("the request body is empty; send a JSON object")
    check_json_depth(body)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}") from exc
    check_json_integers(body)
    return value


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    data = await read_json(request, limit)
    if not isinstance(data, dict):
        raise BadRequestError(f"the request body must be a JSON object, not {type(data).__name__}")
    return data


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """A 400 naming the limit when `body` nests objects and arrays more than `limit` deep: checked
    before parsing, so nothing deeper is ever built (about 2 µs for a /v2/call of 2 KB;
    bench/request_checks.py)."""
    depth = depth_over(body, limit)
    if depth is not None:
        raise BadRequestError(f"the request body nests objects and arrays {depth} levels deep; the limit is {limit}")


def check_json_integers(body: bytes) -> None:
    """A 400 when the valid JSON text `body` holds an integer literal orjson would not read exactly
    (it reads one beyond 64 bits as a rounded float: a value stored, sent upstream or compared as
    something else than the caller sent)."""
    literal = inexact_integer(body)
    if literal is not None:
        raise BadRequestError(f"the request body holds the integer {literal}, beyond 64 bits; "
                              "send it as a string or a float")


def ascii_int(text: str, max_digits: int = 10) -> int | None:
    """`text` as a number if it is 1 to `max_digits` ASCII digits, else None. `int()` and
    `str.isdigit()` also take signs, spaces, underscores and other scripts' digits (even "²",
    which `int()` then refuses)."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def query_int(request: Request, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_SQL_INT) -> int:
    """A non-negative integer query parameter; anything else, or one outside the bounds, is a 400
    (the default maximum is the range every integer column of either store holds)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = ascii_int(raw)
    if value is None or not minimum <= value <= maximum:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadRequestError(f"query parameter '{name}' must be an integer from {minimum} to {maximum}, got '{shown}'")
    return value
