"""The capability table, entry by entry, and what it makes the OpenAI-compatible adapter send."""

from __future__ import annotations

from typing import Any

import pytest

from taskgate.providers.base import ChatRequest, StructuredOutput
from taskgate.providers.catalog import PRESETS, preset_family
from taskgate.providers.model_traits import CAPABILITIES, RULES, UNKNOWN, StructuredMode, model_traits, rule_for
from taskgate.providers.openai_compat import build_body

S = StructuredMode
# (family, a model id, its capabilities, its structured mode, its per-image price): one row per rule
EXPECTED: list[tuple[str, str, set[str], StructuredMode, float | None]] = [
    ("openai", "gpt-5-mini", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT, None),
    ("openai", "gpt-4.1-nano", {"tools", "json_schema", "vision", "files"}, S.STRICT, None),
    ("openai", "gpt-4o-mini", {"tools", "json_schema", "vision", "files"}, S.STRICT, None),
    ("openai", "gpt-4o-audio-preview", {"tools", "audio"}, S.JSON_OBJECT, None),
    ("openai", "gpt-4o-mini-audio-preview", {"tools", "audio"}, S.JSON_OBJECT, None),
    ("openai", "gpt-4o-search-preview", {"json_schema"}, S.STRICT, None),
    ("openai", "gpt-4o-mini-search-preview", {"json_schema"}, S.STRICT, None),
    ("openai", "gpt-4o-realtime-preview", set(), S.PROMPT, None),
    ("openai", "gpt-4o-mini-realtime-preview", set(), S.PROMPT, None),
    ("openai", "gpt-4o-transcribe", set(), S.PROMPT, None),
    ("openai", "gpt-4o-mini-transcribe", set(), S.PROMPT, None),
    ("openai", "gpt-4o-mini-tts", set(), S.PROMPT, None),
    ("openai", "gpt-4.5-preview", {"tools", "json_schema", "vision", "files"}, S.STRICT, None),
    ("openai", "gpt-4-turbo-2024-04-09", {"tools", "vision"}, S.JSON_OBJECT, None),
    ("openai", "gpt-4-vision-preview", {"vision"}, S.PROMPT, None),
    ("openai", "gpt-4-0613", {"tools"}, S.PROMPT, None),
    ("openai", "gpt-3.5-turbo", {"tools"}, S.JSON_OBJECT, None),
    ("openai", "gpt-3.5-turbo-instruct", set(), S.PROMPT, None),
    ("openai", "o1", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT, None),
    ("openai", "o3", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT, None),
    ("openai", "o3-mini", {"tools", "json_schema", "reasoning"}, S.STRICT, None),
    ("openai", "o4-mini", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT, None),
    ("openai", "text-embedding-3-small", {"embeddings"}, S.PROMPT, None),
    ("openai", "gpt-image-1", {"image_generation"}, S.PROMPT, None),
    ("openai", "dall-e-3", {"image_generation"}, S.PROMPT, 0.04),
    ("openai", "dall-e-2", {"image_generation"}, S.PROMPT, 0.02),
    ("together", "black-forest-labs/FLUX.1-schnell", {"image_generation"}, S.PROMPT, None),
    ("anthropic", "claude-3-5-haiku-latest", {"tools", "json_schema", "vision", "files"}, S.STRICT, None),
    ("anthropic", "claude-3-7-sonnet-latest", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT,
     None),
    ("anthropic", "claude-sonnet-4-5", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT, None),
    ("anthropic", "claude-opus-4-1", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT, None),
    ("anthropic", "claude-haiku-4-5", {"tools", "json_schema", "vision", "files", "reasoning"}, S.STRICT, None),
    ("deepseek", "deepseek-chat", {"tools"}, S.JSON_OBJECT, None),
    ("deepseek", "deepseek-reasoner", {"reasoning"}, S.JSON_OBJECT, None),
    ("mistral", "mistral-embed", {"embeddings"}, S.PROMPT, None),
    ("mistral", "pixtral-large-latest", {"tools", "json_schema", "vision"}, S.STRICT, None),
    ("local", "qwen2.5-0.5b", {"json_schema"}, S.STRICT, None),
]


def test_every_rule_has_its_row() -> None:
    """A rule added without a row here fails: each entry of the table is tested."""
    assert {id(rule_for(family, model)) for family, model, *_ in EXPECTED} == {id(rule) for rule in RULES}


@pytest.mark.parametrize(("family", "model", "capabilities", "mode", "image_price"), EXPECTED,
                         ids=[f"{row[0]}/{row[1]}" for row in EXPECTED])
def test_each_entry(family: str, model: str, capabilities: set[str], mode: StructuredMode,
                    image_price: float | None) -> None:
    traits = model_traits(family, model)
    assert traits.known and traits.capabilities == capabilities and traits.structured is mode
    assert traits.image_price == image_price
    assert capabilities <= set(CAPABILITIES)


def test_unknown_models_refuse_nothing() -> None:
    for family, model in (("openai", "my-finetune"), ("groq", "llama-3.3-70b"), (None, "gpt-4o")):
        traits = model_traits(family, model)
        assert traits is UNKNOWN and not traits.refuses("vision") and traits.structured is S.STRICT
    assert model_traits("local", "any").refuses("vision") and model_traits("openai", "gpt-3.5-turbo").refuses("audio")


def test_families_of_the_presets() -> None:
    assert preset_family(PRESETS["local"]) == "local"
    assert model_traits(preset_family(PRESETS["azure"]), "gpt-4o") == model_traits("openai", "gpt-4o")
    assert preset_family(PRESETS["ollama"]) is None


SCHEMA: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


@pytest.mark.parametrize(("mode", "expected"), [
    (S.STRICT, {"type": "json_schema", "strict": True}),
    (S.JSON_SCHEMA, {"type": "json_schema", "strict": False}),
    (S.JSON_OBJECT, {"type": "json_object"}),
    (S.PROMPT, None),
])
def test_what_each_structured_mode_sends(mode: StructuredMode, expected: dict[str, Any] | None) -> None:
    body = build_body(ChatRequest(model="m", messages=[], structured=StructuredOutput(SCHEMA, "answer")), "openai",
                      structured_mode=mode)
    if expected is None:
        assert "response_format" not in body
        return
    assert body["response_format"]["type"] == expected["type"]
    if expected["type"] == "json_schema":
        sent = body["response_format"]["json_schema"]
        assert sent["strict"] is expected["strict"] and sent["name"] == "answer"
        assert sent["schema"]["properties"] == SCHEMA["properties"]
