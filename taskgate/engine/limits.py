"""What one request may cost upstream, whatever the caller asks: the operator's limits, and the
per-request budget that counts against them.

Schema re-asks and model fallbacks multiply: each re-ask can fall back along the chain, and each
carries every earlier turn, so its prompt grows. Left to the caller, one request made 1,274
upstream calls in five seconds. Every upstream call of a request (first try, fallback or re-ask)
goes through `Budget.take_call`, in the router, so the bound is written once for run and stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskgate.engine.media import DEFAULT_MAX_MEDIA_BYTES
from taskgate.engine.task import DEFAULT_MAX_ATTEMPTS
from taskgate.errors import CallBudgetExceededError, RequestValidationError
from taskgate.providers.base import Usage

MAX_ATTEMPTS_KEY = "invocation.structured_generation.max_attempts"


@dataclass(frozen=True, slots=True)
class CallLimits:
    """The operator's ceilings for one request (TASKGATE_MAX_ATTEMPTS, TASKGATE_MAX_UPSTREAM_CALLS,
    TASKGATE_MAX_REQUEST_TOKENS, TASKGATE_MAX_MEDIA_BYTES)."""

    max_attempts: int = 10
    max_upstream_calls: int = 30
    max_request_tokens: int = 1_000_000
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES  # of each media part, decoded

    def attempts(self, asked: int | None) -> int:
        """How many schema attempts a call makes: the caller's number when it is within the cap (a
        larger one is refused, never quietly lowered), else the spec's default within the cap."""
        if asked is None:
            return min(DEFAULT_MAX_ATTEMPTS, self.max_attempts)
        if asked > self.max_attempts:
            raise RequestValidationError(
                f"configuration '{MAX_ATTEMPTS_KEY}' must be at most {self.max_attempts} on this server, got {asked}"
            )
        return asked


@dataclass(slots=True)
class Budget:
    """The upstream calls one request has made, and its tokens so far (the call's own running usage)."""

    limits: CallLimits
    usage: Usage
    calls: int = 0

    def take_call(self, failed: list[str]) -> None:
        """Count one more upstream call, or refuse it when the request has used its calls or tokens.

        `failed` says what happened to the models tried so far in this chain, for the message.
        """
        limits = self.limits
        if self.calls >= limits.max_upstream_calls:
            reason = f"made {self.calls} upstream calls, the most this server allows one request"
        elif self.usage.total_tokens > limits.max_request_tokens:
            reason = (f"used {self.usage.total_tokens} tokens, over the {limits.max_request_tokens} "
                      "this server allows one request")
        else:
            self.calls += 1
            return
        earlier = f" (models failed: {'; '.join(failed)})" if failed else ""
        raise CallBudgetExceededError(f"no further upstream call: the request {reason}{earlier}")
