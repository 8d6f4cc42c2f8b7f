"""One structured (JSON) log line per request.

Lines are buffered and written in batches (at most `flush_interval` late): a write system call
per request would cost more than the rest of the logging.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from typing import Any, TextIO

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Scope

log = logging.getLogger("taskgate.access")
REQUEST_OBSERVER = "taskgate.observe_request"  # scope key: called with (scope, status, seconds, route)


class BufferedHandler(logging.StreamHandler):
    """A stream handler that leaves flushing to `flush_log` (and to warnings, which flush at once)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.buffered = True

    def flush(self) -> None:
        if not self.buffered:
            super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            super().flush()

    def force_flush(self) -> None:
        super().flush()


_handler = BufferedHandler(sys.stderr)
_configured = False  # whether `configure_logging` made `_handler` the access log's only output


class JSONFormatter(logging.Formatter):
    """Every line the server writes is one JSON object, like the access lines.

    An exception's message may quote what it failed on (a caller's input, an upstream's answer),
    so below debug level a logged exception keeps its type and stack but not its message; only
    messages known to carry no content (a failed system call, a database error whose parameters
    the engine hides) are kept. `--log-level DEBUG` logs them whole.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": record.created, "level": record.levelname.lower(), "logger": record.name,
                                "message": record.getMessage()}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()

    def formatException(self, ei: Any) -> str:
        _, exc, tb = ei
        if exc is None or logging.getLogger("taskgate").isEnabledFor(logging.DEBUG):
            return super().formatException(ei)
        lines = traceback.format_list(traceback.extract_tb(tb))
        for link in _chain(exc):
            lines.append(_describe(link) + "\n")
        return "Traceback (most recent call last):\n" + "".join(lines).rstrip("\n")


_CONTENT_FREE = (OSError, TimeoutError, SQLAlchemyError)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost last, as a traceback prints them."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    return chain[::-1]


def _describe(exc: BaseException) -> str:
    name = type(exc).__qualname__
    return f"{name}: {exc}" if isinstance(exc, _CONTENT_FREE) else f"{name} (message withheld below debug level)"


def configure_logging(level: str = "INFO") -> None:
    global _configured
    _handler.stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, closefd=False)  # noqa: SIM115
    _handler.setFormatter(JSONFormatter())
    root = logging.getLogger("taskgate")
    root.handlers[:] = [_handler]
    root.setLevel(level)
    root.propagate = False
    # The OpenTelemetry exporter logs a failing collector (retries, refused batches): one JSON line
    # each too, at warning and above whatever the level, rather than Python's bare fallback output.
    otel = logging.getLogger("opentelemetry")
    otel.handlers[:] = [_handler]
    otel.setLevel(max(logging.WARNING, root.level))
    otel.propagate = False
    _configured = True


async def flush_log() -> None:
    """Push buffered log lines out (the app runs this every quarter second and at shutdown)."""
    _handler.force_flush()


def log_access(scope: Scope, status: int, start: float, route: str | None = None) -> None:
    """One JSON line: method, path, status, and milliseconds until the response (or stream) began.

    Written straight to the access log's buffered stream: building a LogRecord for every request
    cost more than the rest of the line. Only when `configure_logging` set that stream up: an app
    embedded in a host that owns logging goes through the host's handlers.

    The same figures go to the request observer the app put in the scope (`REQUEST_OBSERVER`: the
    Prometheus metrics), with `route` naming the route where the scope has none (no route matched).
    """
    seconds = time.perf_counter() - start
    observe = scope.get(REQUEST_OBSERVER)
    if observe is not None:
        observe(scope, status, seconds, route)
    if not log.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {
        "ts": time.time(),
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "ms": round(seconds * 1000, 3),
    }
    text = orjson.dumps(line).decode()
    if _configured:
        with contextlib.suppress(OSError, ValueError):  # stderr gone: lose the line, as logging would, not the request
            _handler.stream.write(text + "\n")
    else:
        log.info(text)
