"""Recording what the server does: spans, written off the request path."""

from taskgate.telemetry.recorder import SpanRecorder

__all__ = ["SpanRecorder"]
