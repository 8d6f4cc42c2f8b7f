"""What crosses the Unix socket between a worker and the local model process, and how.

One connection carries one request. Each frame is a 4-byte big-endian length and a JSON object.
A worker sends `{"op": "generate", "model", "plan"}` or `{"op": "embed", "inputs", "options"}`;
the model process answers with `{"piece": text}` frames as a generation goes, then `{"done": ...}`
or `{"error": ...}`. A worker that closes the connection early stops the generation, as a caller
leaving an in-process one does. The plan and outcome are the same dataclasses the in-process
runner takes and gives, so both paths run one generation code.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from taskgate.errors import (
    BadRequestError,
    OverloadedError,
    ProviderError,
    ProviderNotConfiguredError,
    TaskgateError,
)
from taskgate.providers.base import Usage

MAX_FRAME_BYTES = 256 * 1024 * 1024  # an embed answer: 2048 vectors of 384 numbers, as JSON
_LENGTH_BYTES = 4

# The errors a local model may raise, rebuilt on the worker's side as themselves.
_ERRORS: dict[str, type[TaskgateError]] = {cls.__name__: cls for cls in (
    BadRequestError, OverloadedError, ProviderError, ProviderNotConfiguredError)}


@dataclass(slots=True)
class Plan:
    """Everything a generation needs, checked on the caller's loop so bad input fails before it queues."""

    messages: list[dict[str, Any]]
    schema: dict[str, Any] | None
    max_tokens: int
    stops: list[str]
    sampling: dict[str, Any]
    seed: int | None


@dataclass(slots=True)
class Outcome:
    text: str
    finish_reason: str
    usage: Usage
    notes: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason, "usage": asdict(self.usage),
                "notes": self.notes}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Outcome:
        return cls(text=data["text"], finish_reason=data["finish_reason"], usage=Usage(**data["usage"]),
                   notes=list(data["notes"]))


class ModelProcessError(ProviderError):
    """The local model process broke the protocol or went away mid-answer."""


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, TaskgateError) and type(exc).__name__ in _ERRORS:
        return {"kind": type(exc).__name__, "detail": exc.detail,
                "retry_after": int(exc.headers.get("Retry-After", "1"))}
    return {"kind": ProviderError.__name__, "detail": f"the local model failed: {type(exc).__name__}: {exc}"[:2000],
            "retry_after": 1}


def error_from_wire(data: dict[str, Any]) -> TaskgateError:
    cls = _ERRORS.get(str(data.get("kind")), ProviderError)
    detail = str(data.get("detail", ""))
    if issubclass(cls, OverloadedError):
        return cls(detail, retry_after=int(data.get("retry_after", 1)))
    return cls(detail)


def write_frame(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    body = orjson.dumps(message)
    writer.write(len(body).to_bytes(_LENGTH_BYTES, "big") + body)


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of the connection."""
    try:
        head = await reader.readexactly(_LENGTH_BYTES)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ModelProcessError("the local model connection ended inside a frame") from None
        return None
    length = int.from_bytes(head, "big")
    if length > MAX_FRAME_BYTES:
        raise ModelProcessError(f"a local model frame of {length} bytes is over the limit")
    try:
        message = orjson.loads(await reader.readexactly(length))
    except asyncio.IncompleteReadError:
        raise ModelProcessError("the local model connection ended inside a frame") from None
    except orjson.JSONDecodeError:
        raise ModelProcessError("a local model frame is not JSON") from None
    if not isinstance(message, dict):
        raise ModelProcessError("a local model frame is not a JSON object")
    return message
