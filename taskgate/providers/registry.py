"""Provider name -> adapter, built once per provider so each upstream keeps one warm pool.

Which adapter serves a provider is decided by its preset's `kind`, looked up in `ADAPTER_KINDS`:
a new wire format is one module and one line there. A vendor that speaks an existing format is
configuration only (a preset or `TASKGATE_PROVIDERS`). Adapters can also be handed in ready-made,
by provider name, which is how tests and embedders put a `ScriptedAdapter` behind the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from taskgate.config import Settings
from taskgate.errors import BadRequestError
from taskgate.providers.anthropic.adapter import AnthropicAdapter
from taskgate.providers.base import Adapter
from taskgate.providers.catalog import (
    ResolvedProvider,
    configured_providers,
    load_presets,
    preset_family,
    resolve_provider,
)
from taskgate.providers.cohere import CohereAdapter
from taskgate.providers.model_traits import ModelTraits, model_traits
from taskgate.providers.openai_compat import OpenAICompatAdapter

AdapterFactory = Callable[[ResolvedProvider, Settings], Adapter]

def _local_adapter(resolved: ResolvedProvider, settings: Settings) -> Adapter:
    # Imported here: only a server that routes to `local/...` loads the local provider's modules. Its
    # optional libraries (llama.cpp, the embedding model's) are imported on a model's first use.
    from taskgate.providers.local.adapter import LocalAdapter

    return LocalAdapter(settings)


ADAPTER_KINDS: dict[str, AdapterFactory] = {
    "openai": lambda resolved, settings: OpenAICompatAdapter(resolved, timeout_s=settings.request_timeout_s),
    "anthropic": lambda resolved, settings: AnthropicAdapter(resolved, timeout_s=settings.request_timeout_s),
    "cohere": lambda resolved, settings: CohereAdapter(resolved, timeout_s=settings.request_timeout_s),
    "local": _local_adapter,
}


class ProviderRegistry:
    def __init__(self, settings: Settings, adapters: Mapping[str, Adapter] | None = None,
                 kinds: Mapping[str, AdapterFactory] = ADAPTER_KINDS) -> None:
        self._settings = settings
        self._presets = load_presets(settings.provider_entries)
        # Asked for every route of every call (`traits`); the presets are fixed for the registry's life.
        self._families = {name: preset_family(preset) for name, preset in self._presets.items()}
        self._kinds = kinds
        self._adapters: dict[str, Adapter] = dict(adapters or {})
        self._custom: dict[str, tuple[ResolvedProvider, Adapter]] = {}  # by custom model id

    def adapter_for(self, provider: str) -> Adapter:
        """The adapter for `provider`; raises ProviderNotConfiguredError naming the missing variable."""
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = self._build(provider)
            self._adapters[provider] = adapter
        return adapter

    def price_provider(self, provider: str) -> str | None:
        """The genai-prices provider id for `provider`, when prices are known."""
        preset = self._presets.get(provider)
        return preset.price_provider if preset else None

    def family(self, provider: str) -> str | None:
        """The model family `provider` serves (`catalog.preset_family`); None for an unknown one."""
        return self._families.get(provider)

    def traits(self, provider: str, model: str) -> ModelTraits:
        """What `provider`'s `model` can take and how it is asked for JSON (see `model_traits`)."""
        return model_traits(self._families.get(provider), model)

    def known(self) -> list[str]:
        """Every provider a model name may start with: the presets and the configured entries."""
        return sorted(self._presets)

    def configured(self) -> list[str]:
        """The providers whose credentials are set (the local one aside)."""
        return configured_providers(self._presets, self._settings.provider_variables)

    async def custom_adapter(self, key: str, resolved: ResolvedProvider) -> Adapter:
        """The adapter of the custom model `key` (its id), built once for its endpoint and key. When
        they have changed (on this replica or another), the old adapter is closed for a new one."""
        held = self._custom.get(key)
        if held is not None and held[0] == resolved:
            return held[1]
        adapter = self._of_kind(resolved)
        self._custom[key] = (resolved, adapter)
        if held is not None:
            await held[1].aclose()
        return adapter

    async def release_custom(self, key: str) -> None:
        """Close the adapter of the custom model `key`, which was changed or deleted."""
        held = self._custom.pop(key, None)
        if held is not None:
            await held[1].aclose()

    async def aclose(self) -> None:
        adapters = [*self._adapters.values(), *(adapter for _, adapter in self._custom.values())]
        self._adapters, self._custom = {}, {}
        for adapter in adapters:
            await adapter.aclose()

    def _build(self, provider: str) -> Adapter:
        return self._of_kind(resolve_provider(provider, self._presets, self._settings.provider_variables))

    def _of_kind(self, resolved: ResolvedProvider) -> Adapter:
        factory = self._kinds.get(resolved.preset.kind)
        if factory is None:
            raise BadRequestError(f"provider '{resolved.preset.name}' has unknown kind '{resolved.preset.kind}'; "
                                  f"use {', '.join(self._kinds)}")
        return factory(resolved, self._settings)
