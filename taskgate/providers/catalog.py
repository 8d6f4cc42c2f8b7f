"""Provider presets: a vendor that speaks a known wire format is configuration, not code.

Extra OpenAI-compatible vendors come from `TASKGATE_PROVIDERS` (a JSON object) or the TOML file
named by `TASKGATE_PROVIDERS_FILE`, each entry `{base_url, key_env, kind?, base_url_env?, rerank_path?}`; config.py
reads both, and the variables the presets and entries name, into `Settings`. Nothing here reads
the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from taskgate.errors import BadRequestError, ProviderNotConfiguredError

FREE = "free"  # the price provider of models that cost nothing to run: the local ones


@dataclass(frozen=True, slots=True)
class ProviderPreset:
    name: str
    kind: str  # "openai" | "anthropic" | "local"
    base_url: str
    key_env: str | None  # the variable holding the API key
    base_url_env: str | None = None  # the variable overriding base_url
    key_required: bool = True
    auth_header: str = "authorization"  # "authorization" (Bearer) or "api-key" (Azure)
    price_provider: str | None = None  # genai-prices provider id, or FREE; None: prices unknown
    # Options the vendor's API refuses, refused by name before any call instead of by the vendor's
    # own 400. Vendors whose servers take them (vLLM's and Together's `top_k`) list none.
    refused_options: tuple[str, ...] = ()
    # Where the vendor serves the Cohere-style rerank wire, under base_url; None: it has no rerank API.
    rerank_path: str | None = None


# Anthropic Messages options that OpenAI's Chat Completions has no exact equivalent for (thinking's
# budget_tokens has none; reasoning_effort is not the same knob), and which its API refuses.
OPENAI_REFUSED = ("thinking", "top_k")
PRESETS: dict[str, ProviderPreset] = {
    p.name: p
    for p in (
        ProviderPreset("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                       price_provider="openai", refused_options=OPENAI_REFUSED),
        ProviderPreset("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY",
                       "ANTHROPIC_BASE_URL", price_provider="anthropic"),
        ProviderPreset("azure", "openai", "", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_BASE_URL",
                       auth_header="api-key", price_provider="azure", refused_options=OPENAI_REFUSED),
        ProviderPreset("groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "GROQ_BASE_URL",
                       price_provider="groq"),
        ProviderPreset("mistral", "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "MISTRAL_BASE_URL",
                       price_provider="mistral"),
        ProviderPreset("openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY",
                       "OPENROUTER_BASE_URL", price_provider="openrouter"),
        ProviderPreset("together", "openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY",
                       "TOGETHER_BASE_URL", price_provider="together", rerank_path="/rerank"),
        ProviderPreset("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY",
                       "DEEPSEEK_BASE_URL", price_provider="deepseek"),
        ProviderPreset("ollama", "openai", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY", "OLLAMA_BASE_URL",
                       key_required=False),
        ProviderPreset("vllm", "openai", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", "VLLM_BASE_URL",
                       key_required=False, rerank_path="/rerank"),
        # Rerank vendors: Cohere's own API serves rerank only here (see providers/cohere.py); Jina's
        # embeddings are OpenAI-shaped. genai-prices has no rerank prices for either: costs are unknown.
        ProviderPreset("cohere", "cohere", "https://api.cohere.com/v2", "COHERE_API_KEY", "COHERE_BASE_URL",
                       rerank_path="/rerank"),
        ProviderPreset("jina", "openai", "https://api.jina.ai/v1", "JINA_API_KEY", "JINA_BASE_URL",
                       rerank_path="/rerank"),
        ProviderPreset("local", "local", "", None, key_required=False, price_provider=FREE),
    )
}


def preset_family(preset: ProviderPreset) -> str | None:
    """The model family a preset serves, as `model_traits` knows it: "local" for in-process models,
    else its price provider (Azure serves OpenAI's models), else None (unknown models)."""
    return "local" if preset.kind == "local" else preset.price_provider


@dataclass(frozen=True, slots=True)
class ResolvedProvider:
    """A preset with its variables applied: everything an adapter needs to connect."""

    preset: ProviderPreset
    base_url: str
    api_key: str | None
    query: tuple[tuple[str, str], ...] = ()  # sent with every request, e.g. Azure's api-version


def load_presets(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, ProviderPreset]:
    """The built-in presets with the operator's entries (`Settings.provider_entries`) applied."""
    presets = dict(PRESETS)
    for name, entry in entries.items():
        base = presets.get(name)
        fields = {
            "kind": entry.get("kind", base.kind if base else "openai"),
            "base_url": entry.get("base_url", base.base_url if base else ""),
            "key_env": entry.get("key_env", base.key_env if base else None),
            "base_url_env": entry.get("base_url_env", base.base_url_env if base else None),
            "key_required": entry.get("key_required", bool(entry.get("key_env", base and base.key_env))),
            "rerank_path": entry.get("rerank_path", base.rerank_path if base else None),
        }
        presets[name] = replace(base, **fields) if base else ProviderPreset(name=name, **fields)
    return presets


def resolve_provider(name: str, presets: Mapping[str, ProviderPreset],
                     variables: Mapping[str, str]) -> ResolvedProvider:
    """Apply the provider variables (`Settings.provider_variables`) to a preset, or say exactly which to set."""
    preset = presets.get(name)
    if preset is None:
        raise ProviderNotConfiguredError(
            f"unknown provider '{name}'; known providers: {', '.join(sorted(presets))}. "
            "Add an OpenAI-compatible one with TASKGATE_PROVIDERS"
        )
    base_url = (variables.get(preset.base_url_env) if preset.base_url_env else None) or preset.base_url
    api_key = variables.get(preset.key_env) if preset.key_env else None
    if preset.kind != "local":
        if preset.key_required and not api_key:
            raise ProviderNotConfiguredError(f"provider '{name}' is not configured: set {preset.key_env}")
        if not base_url:
            raise ProviderNotConfiguredError(f"provider '{name}' is not configured: set {preset.base_url_env}")
    return ResolvedProvider(preset=preset, base_url=base_url.rstrip("/"), api_key=api_key)


def split_model_name(spec: str) -> tuple[str, str]:
    """`provider/model` -> (provider, model). The model part may itself contain slashes."""
    provider, sep, model = spec.partition("/")
    if not sep or not provider or not model:
        raise BadRequestError(f"model '{spec}' must be written as 'provider/model', e.g. 'openai/gpt-4o-mini'")
    return provider, model


def configured_providers(presets: Mapping[str, ProviderPreset], variables: Mapping[str, str]) -> list[str]:
    """Names of the providers whose credentials are present: what /v3/models lists."""
    names = []
    for name, preset in presets.items():
        if preset.kind == "local":
            continue
        if preset.key_env and variables.get(preset.key_env):
            names.append(name)
    return names
