"""What both fake wire formats share: the scripted behaviour, token counting and text splitting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

_PIECE = re.compile(r"\w+\s*|[^\w]+")


@dataclass(slots=True)
class Behaviour:
    """One scripted answer of the fake, consumed by one request for its model."""

    status: int = 200  # non-200 -> the provider's real error body (429 also sets retry-after)
    text: str | None = None  # answer text
    json: Any = None  # answer object: content JSON (OpenAI) or the forced tool's input (Anthropic)
    tool_calls: list[tuple[str, dict[str, Any]]] | None = None  # [(name, arguments)]
    delay_s: float = 0.0  # wait before responding (to trigger client timeouts)
    event_delay_s: float = 0.0  # streaming: wait before each event (to let a client leave mid-stream)
    cut_after: int | None = None  # streaming: drop the connection after N events, with no clean end
    end_delay_s: float = 0.0  # streaming: wait between the last event and the body's end (its terminator)
    fail_after: int | None = None  # streaming: after N events send the in-stream error event, then end
    raw_body: bytes | None = None  # sent verbatim as an application/json body (malformed answers)
    finish_reason: str | None = None  # e.g. "length", "content_filter" / Anthropic "max_tokens", "refusal"
    usage: dict[str, Any] | None = None  # merged into the wire usage object (provider's own field names)
    retry_after: str = "1"  # the retry-after header value sent with a 429


@lru_cache(maxsize=4096)
def pieces(text: str) -> tuple[str, ...]:
    """Word-sized pieces, as a model would stream them; concatenated they give `text` back."""
    return tuple(_PIECE.findall(text))


def token_count(text: str) -> int:
    return len(pieces(text))


def input_tokens(chars: int) -> int:
    """A deterministic stand-in for a tokenizer that tests can predict."""
    return chars // 4 + 1


def content_chars(content: Any) -> int:
    """Characters of text in a message `content` (a string or a list of typed parts/blocks)."""
    if isinstance(content, str):
        return len(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += len(text)
                elif "content" in part:  # Anthropic tool_result blocks nest their content
                    total += content_chars(part["content"])
                elif "input" in part:
                    total += len(orjson.dumps(part["input"]))
    return total


def merge_usage(usage: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Apply a scripted usage override, merging one level into nested detail objects."""
    if override:
        for key, value in override.items():
            current = usage.get(key)
            if isinstance(current, dict) and isinstance(value, dict):
                usage[key] = {**current, **value}
            else:
                usage[key] = value
    return usage


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
