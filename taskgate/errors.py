"""One error hierarchy for the whole server.

Every error knows its HTTP status and renders the hybrid body of spec §9.3, which both
SDK generations (and the openai client) parse. Caller mistakes (4xx) are kept apart from
provider failures (502/503/504), and only the latter are retriable by the fallback router.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class TaskgateError(Exception):
    """Base of every error that reaches the wire."""

    status: int = 500
    type_name: str = "InternalServerError"
    code: str = "internal_error"
    default_message: str = "Internal server error"

    def __init__(self, detail: str | None = None, *, details: Any = None, headers: dict[str, str] | None = None):
        self.detail = detail or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        """The hybrid v2/v3/OpenAI error body of spec §9.3."""
        return {
            "type": self.type_name,
            "message": self.default_message,
            "detail": self.detail,
            "error": {
                "code": self.code,
                "message": self.detail,
                "type": self.type_name,
                "details": self.details,
            },
        }


class BadRequestError(TaskgateError):
    status = 400
    type_name = "BadRequestError"
    code = "bad_request"
    default_message = "The request is invalid"


class SchemaError(BadRequestError):
    """A JSON Schema in the request does not compile."""

    code = "invalid_schema"


class InputValidationError(BadRequestError):
    code = "invalid_input"


class StructuredGenerationError(BadRequestError):
    type_name = "StructuredGenerationError"
    code = "structured_generation_failed"
    default_message = "The structured generation failed"


class CallBudgetExceededError(BadRequestError):
    """One request used the upstream calls or tokens the operator allows it (re-asks and fallbacks
    included); no further call is made. Not a ProviderError: the router must not fall back on it."""

    type_name = "CallBudgetExceededError"
    code = "call_budget_exceeded"
    default_message = "The request used its upstream budget"


class GuardBlockedError(BadRequestError):
    """A guard whose action is block found something: in the input, before any provider call; in
    the output, instead of the answer. `details` names each finding's kind and position only."""

    type_name = "GuardBlockedError"
    code = "guard_blocked"
    default_message = "A guard blocked the call"


class ProviderNotConfiguredError(BadRequestError):
    code = "provider_not_configured"


class ModelRejectedError(BadRequestError):
    """The upstream refused the request itself (unknown model, bad parameter): not retriable."""

    code = "model_rejected"


class UnauthorizedError(TaskgateError):
    status = 401
    type_name = "UnauthorizedError"
    code = "unauthorized"
    default_message = "The request is unauthorized"


class PaymentRequiredError(TaskgateError):
    status = 402
    type_name = "PaymentRequiredError"
    code = "payment_required"
    default_message = "The request needs a budget"


class BudgetExceededError(PaymentRequiredError):
    """A key or project spent its USD budget for the period. 402, not 429: waiting seconds does
    not help (the budget resets at the period's end, named in `details`), and the clients retry a
    429 on their own (the openai SDK does by default), which would only repeat the refusal."""

    type_name = "BudgetExceededError"
    code = "budget_exceeded"
    default_message = "The budget is spent"


class ForbiddenError(TaskgateError):
    """A request that is understood and authenticated but refused (a UI form without its CSRF token,
    a key without the right)."""

    status = 403
    type_name = "ForbiddenError"
    code = "forbidden"
    default_message = "The request is not allowed for this API key"


class ModelNotAllowedError(ForbiddenError):
    """A model of the call's chain (a fallback, or a model an alias stands for) is outside the
    models the key or its project may call."""

    code = "model_not_allowed"
    default_message = "The model is not allowed for this API key"


class RateLimitedError(TaskgateError):
    """A key or project made its requests or used its tokens per minute: come back after `Retry-After`."""

    status = 429
    type_name = "RateLimitError"
    code = "rate_limited"
    default_message = "The rate limit is reached"

    def __init__(self, detail: str, *, retry_after: int, details: Any = None):
        super().__init__(detail, details=details, headers={"Retry-After": str(retry_after)})


class NotFoundError(TaskgateError):
    status = 404
    type_name = "NotFoundError"
    code = "not_found"
    default_message = "The resource was not found"


class ConflictError(TaskgateError):
    status = 409
    type_name = "ConflictError"
    code = "conflict"
    default_message = "The resource already exists"


class MethodNotAllowedError(TaskgateError):
    status = 405
    type_name = "MethodNotAllowedError"
    code = "method_not_allowed"
    default_message = "The method is not allowed on this resource"

    def __init__(self, method: str, path: str, allowed: Iterable[str]):
        """`allowed`: every method `path` serves, sent in the `Allow` header RFC 9110 requires."""
        allow = ", ".join(sorted(set(allowed)))
        super().__init__(f"{method} is not allowed on {path}; allowed: {allow}", headers={"Allow": allow})


class RequestTimeoutError(TaskgateError):
    """The client did not send its request (head or body) in time; the connection is then closed."""

    status = 408
    type_name = "RequestTimeoutError"
    code = "request_timeout"
    default_message = "The request was not received in time"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"Connection": "close"})


class PayloadTooLargeError(TaskgateError):
    status = 413
    type_name = "PayloadTooLargeError"
    code = "payload_too_large"
    default_message = "The request body is too large"


class UnsupportedMediaTypeError(TaskgateError):
    status = 415
    type_name = "UnsupportedMediaTypeError"
    code = "unsupported_media_type"
    default_message = "The file type is not supported"


class RequestHeaderFieldsTooLargeError(TaskgateError):
    status = 431
    type_name = "RequestHeaderFieldsTooLargeError"
    code = "headers_too_large"
    default_message = "The request's header fields are too large"


class RequestValidationError(TaskgateError):
    status = 422
    type_name = "RequestValidationError"
    code = "validation_error"
    default_message = "The request is invalid"


class OverloadedError(TaskgateError):
    """A local queue is full: the caller should come back later."""

    status = 503
    type_name = "ServiceUnavailableError"
    code = "overloaded"
    default_message = "The server is busy"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ShuttingDownError(OverloadedError):
    """The server stopped while the call was still running: another replica, or a retry, will answer."""

    code = "shutting_down"
    default_message = "The server is shutting down"


class JournalUnavailableError(OverloadedError):
    """The span journal cannot take another record (its disk is full, or it holds as much as it may
    while the store is down): a call is refused rather than answered without a record."""

    code = "journal_unavailable"
    default_message = "The server cannot record calls right now"


class StoreUnavailableError(OverloadedError):
    """The database cannot be reached, and the request needs it now (a span made through the span
    API is answered only once stored); calls do not, and keep answering."""

    code = "store_unavailable"
    default_message = "The store cannot be reached"


class ProviderError(TaskgateError):
    """An upstream provider failed; the router falls back to the next model on this class (and its
    subclasses) and on no other error."""

    status = 502
    type_name = "ProviderError"
    code = "upstream_error"
    default_message = "The upstream provider failed"

    def __init__(self, detail: str | None = None, *, upstream_status: int | None = None, details: Any = None):
        super().__init__(detail, details=details)
        self.upstream_status = upstream_status
        self.models_failed: list[str] = []  # "model: reason" for each model of the chain, once the router gave up


class UpstreamRateLimitedError(ProviderError):
    status = 429
    type_name = "RateLimitError"
    code = "upstream_rate_limited"
    default_message = "The upstream provider is rate limiting"


class UpstreamTimeoutError(ProviderError):
    status = 504
    code = "upstream_timeout"
    default_message = "The upstream provider timed out"


class UpstreamUnavailableError(ProviderError):
    code = "upstream_unavailable"


class UpstreamProtocolError(ProviderError):
    """The upstream answered with something that is not its wire format."""

    code = "upstream_malformed"
    default_message = "The upstream provider sent a malformed response"


class StreamCancelledError(TaskgateError):
    """A call (streamed or not) stopped before its end; used only to mark spans, never sent."""

    status = 499
    type_name = "Cancelled"
    code = "cancelled"
    default_message = "The call was cancelled: its client left, or the server stopped"


def classify_upstream_status(status: int, message: str) -> TaskgateError:
    """Map an upstream HTTP status to our hierarchy: 429 and 5xx are retriable, other 4xx are the caller's."""
    if status == 429:
        return UpstreamRateLimitedError(message, upstream_status=status)
    if status >= 500:
        return UpstreamUnavailableError(message, upstream_status=status)
    if status in (401, 403):
        return ProviderError(f"the upstream rejected its credentials: {message}", upstream_status=status)
    if status == 408:
        return UpstreamTimeoutError(message, upstream_status=status)
    return ModelRejectedError(f"the upstream rejected the request ({status}): {message}")
