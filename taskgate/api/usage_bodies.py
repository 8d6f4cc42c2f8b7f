"""Token usage as each dialect writes it: every shape once.

v2 and OpenAI chat completions write OpenAI's shape and differ only in its names (v2 follows the
Responses API's input/output, chat completions say prompt/completion); v3 writes a flat shape of
its own, and Anthropic Messages theirs. A span records usage in the engine's shape
(`taskgate.engine`), which the span bodies show as it is.
"""

from __future__ import annotations

from typing import Any

from taskgate.providers.base import Usage

_RESPONSES_NAMES = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
_CHAT_NAMES = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")


def _openai_usage(usage: Usage, names: tuple[str, str, str, str]) -> dict[str, Any]:
    prompt, completion, prompt_details, completion_details = names
    return {
        prompt: usage.input_tokens,
        completion: usage.output_tokens,
        "total_tokens": usage.total_tokens,
        prompt_details: {"cached_tokens": usage.cache_read_tokens},
        completion_details: {"reasoning_tokens": usage.reasoning_tokens},
    }


def v2_usage(usage: Usage) -> dict[str, Any]:
    """The `usage` of a v2 call response."""
    return _openai_usage(usage, _RESPONSES_NAMES)


def chat_usage(usage: Usage) -> dict[str, Any]:
    """The `usage` of an OpenAI chat completion and of its last chunk."""
    return _openai_usage(usage, _CHAT_NAMES)


def v3_usage(usage: Usage) -> dict[str, int]:
    """The `usage` of a v3 run response and of its stream's `done` chunk."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_creation_tokens": usage.cache_write_tokens,
    }


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """The `usage` of an Anthropic Messages answer and of its stream's `message_delta`."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }
