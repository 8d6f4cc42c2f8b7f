"""Provider name -> adapter, built once per provider so each upstream keeps one warm pool."""

from __future__ import annotations

from taskgate.config import Settings
from taskgate.errors import BadRequestError
from taskgate.providers.anthropic import AnthropicAdapter
from taskgate.providers.base import Adapter
from taskgate.providers.catalog import resolve_provider
from taskgate.providers.openai_compat import OpenAICompatAdapter

LOCAL_INSTALL_HINT = (
    "the local provider needs the local extra: run `pip install 'taskgate[local]'` "
    "(or the setup command in the README)"
)


class ProviderRegistry:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._adapters: dict[str, Adapter] = {}

    def adapter_for(self, provider: str) -> Adapter:
        """The adapter for `provider`; raises ProviderNotConfiguredError naming the missing variable."""
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = self._build(provider)
            self._adapters[provider] = adapter
        return adapter

    def price_provider(self, provider: str) -> str | None:
        """The genai-prices provider id for `provider`, when prices are known."""
        preset = self._settings.presets.get(provider)
        return preset.price_provider if preset else None

    async def aclose(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            await adapter.aclose()

    def _build(self, provider: str) -> Adapter:
        settings = self._settings
        resolved = resolve_provider(provider, settings.presets, settings.env)
        kind = resolved.preset.kind
        if kind == "openai":
            return OpenAICompatAdapter(resolved, timeout_s=settings.request_timeout_s)
        if kind == "anthropic":
            return AnthropicAdapter(resolved, timeout_s=settings.request_timeout_s)
        if kind == "local":
            try:  # the module and its constructor both need the optional llama-cpp-python
                from taskgate.providers.local import LocalAdapter

                return LocalAdapter(settings)
            except ImportError as exc:
                raise BadRequestError(f"{LOCAL_INSTALL_HINT} ({exc})") from exc
        raise BadRequestError(
            f"provider '{provider}' has unknown kind '{kind}'; use openai, anthropic or local"
        )
