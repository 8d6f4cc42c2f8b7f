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
from taskgate.providers.catalog import ResolvedProvider, configured_providers, load_presets, resolve_provider
from taskgate.providers.openai_compat import OpenAICompatAdapter

AdapterFactory = Callable[[ResolvedProvider, Settings], Adapter]

LOCAL_INSTALL_HINT = (
    "the local provider needs the local extra: run `pip install 'taskgate[local]'` "
    "(or the setup command in the README)"
)


def _local_adapter(resolved: ResolvedProvider, settings: Settings) -> Adapter:
    try:  # the module and its constructor both need the optional llama-cpp-python
        from taskgate.providers.local.adapter import LocalAdapter

        return LocalAdapter(settings)
    except ImportError as exc:
        raise BadRequestError(f"{LOCAL_INSTALL_HINT} ({exc})") from exc


ADAPTER_KINDS: dict[str, AdapterFactory] = {
    "openai": lambda resolved, settings: OpenAICompatAdapter(resolved, timeout_s=settings.request_timeout_s),
    "anthropic": lambda resolved, settings: AnthropicAdapter(resolved, timeout_s=settings.request_timeout_s),
    "local": _local_adapter,
}


class ProviderRegistry:
    def __init__(self, settings: Settings, adapters: Mapping[str, Adapter] | None = None,
                 kinds: Mapping[str, AdapterFactory] = ADAPTER_KINDS) -> None:
        self._settings = settings
        self._presets = load_presets(settings.provider_entries)
        self._kinds = kinds
        self._adapters: dict[str, Adapter] = dict(adapters or {})

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

    def configured(self) -> list[str]:
        """The providers whose credentials are set (the local one aside)."""
        return configured_providers(self._presets, self._settings.provider_variables)

    async def aclose(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            await adapter.aclose()

    def _build(self, provider: str) -> Adapter:
        settings = self._settings
        resolved = resolve_provider(provider, self._presets, settings.provider_variables)
        factory = self._kinds.get(resolved.preset.kind)
        if factory is None:
            raise BadRequestError(
                f"provider '{provider}' has unknown kind '{resolved.preset.kind}'; use {', '.join(self._kinds)}"
            )
        return factory(resolved, settings)
