"""What the Anthropic Messages wire format means, shared by the adapter that speaks it to an
upstream (providers/anthropic) and the dialect that serves it to clients (api/anthropic).

A leaf module: both sides read the same tables, and neither imports the other.
"""

from __future__ import annotations

# Anthropic stop_reason -> OpenAI finish_reason, the engine's vocabulary.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The engine's finish_reason -> the stop_reason a client is told (one per finish).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}

# Anthropic error type -> HTTP status, as Anthropic documents them.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_ERROR_TYPES = {status: kind for kind, status in ERROR_STATUS.items()}


def error_type(status: int) -> str:
    """The Anthropic error type of an HTTP status; any 4xx without its own type is the request's
    fault (`invalid_request_error`), and any other 5xx is `api_error`."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"
