"""How uvicorn runs the app: the same options in one process, in each worker, and in tests that
run the app in process."""

from __future__ import annotations

from typing import Any

from taskgate.config import Settings
from taskgate.server.protocol import ReadLimits, protocol_with


def server_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        # httptools, a JSON answer's head and body in one write, slow or huge requests refused
        "http": protocol_with(ReadLimits(settings.max_header_bytes, settings.header_timeout_s,
                                         settings.body_idle_timeout_s, settings.body_timeout_s)),
        "ws": "none",  # no endpoint speaks WebSocket: its libraries are not even imported
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "log_level": "warning",
        # After SIGTERM, in-flight requests get this long; then they are cancelled (their spans are
        # recorded as cancelled and written before exit). A departed client's call is already gone.
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
    }
