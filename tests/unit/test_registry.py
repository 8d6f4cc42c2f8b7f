"""ProviderRegistry: provider name -> configured, cached adapter."""

from __future__ import annotations

import sys

import orjson
import pytest

from taskgate.config import Settings
from taskgate.errors import BadRequestError, ProviderNotConfiguredError, UpstreamTimeoutError
from taskgate.providers.anthropic.adapter import AnthropicAdapter
from taskgate.providers.base import ChatRequest
from taskgate.providers.openai_compat import OpenAICompatAdapter
from taskgate.providers.registry import ProviderRegistry
from tests.fakes.provider import Behaviour, FakeProvider

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = [{"role": "user", "content": "hi"}]


def settings_for(fake: FakeProvider, **extra: str) -> Settings:
    env = {
        "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.openai_base_url,
        "ANTHROPIC_API_KEY": "ak-test", "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        **extra,
    }
    return Settings.from_env(env)


async def test_adapters_by_kind_are_cached_and_talk_to_their_upstream(fake: FakeProvider) -> None:
    registry = ProviderRegistry(settings_for(fake))
    try:
        openai = registry.adapter_for("openai")
        anthropic = registry.adapter_for("anthropic")
        assert isinstance(openai, OpenAICompatAdapter) and isinstance(anthropic, AnthropicAdapter)
        assert registry.adapter_for("openai") is openai
        assert (await openai.complete(ChatRequest(model="m1", messages=USER))).text == fake.default_text("m1")
        assert (await anthropic.complete(ChatRequest(model="m2", messages=USER))).text == fake.default_text("m2")
        assert [r.path for r in fake.requests] == ["/openai/v1/chat/completions", "/anthropic/v1/messages"]
    finally:
        await registry.aclose()


async def test_configured_extra_provider(fake: FakeProvider) -> None:
    extra = {"acme": {"base_url": fake.openai_base_url, "key_env": "ACME_KEY"}}
    registry = ProviderRegistry(settings_for(fake, TASKGATE_PROVIDERS=orjson.dumps(extra).decode(), ACME_KEY="k-acme"))
    try:
        adapter = registry.adapter_for("acme")
        await adapter.complete(ChatRequest(model="m3", messages=USER))
        assert fake.requests[-1].headers["authorization"] == "Bearer k-acme"
        assert registry.price_provider("acme") is None
    finally:
        await registry.aclose()


async def test_default_timeout_comes_from_settings(fake: FakeProvider) -> None:
    settings = settings_for(fake)
    settings.request_timeout_s = 0.2
    registry = ProviderRegistry(settings)
    fake.script("slow", Behaviour(delay_s=3))
    try:
        with pytest.raises(UpstreamTimeoutError, match=r"0\.2s"):
            await registry.adapter_for("openai").complete(ChatRequest(model="slow", messages=USER))
    finally:
        await registry.aclose()


async def test_aclose_drops_cached_adapters(fake: FakeProvider) -> None:
    registry = ProviderRegistry(settings_for(fake))
    first = registry.adapter_for("openai")
    await first.complete(ChatRequest(model="m4", messages=USER))
    await registry.aclose()
    second = registry.adapter_for("openai")
    assert second is not first
    assert (await second.complete(ChatRequest(model="m4", messages=USER))).text == fake.default_text("m4")
    await registry.aclose()


async def test_missing_key_names_the_variable() -> None:
    registry = ProviderRegistry(Settings.from_env({}))
    with pytest.raises(ProviderNotConfiguredError, match="OPENAI_API_KEY"):
        registry.adapter_for("openai")
    with pytest.raises(ProviderNotConfiguredError, match="GROQ_API_KEY"):
        registry.adapter_for("groq")


async def test_unknown_provider_is_a_clear_error() -> None:
    with pytest.raises(ProviderNotConfiguredError, match="unknown provider 'nope'"):
        ProviderRegistry(Settings.from_env({})).adapter_for("nope")


async def test_unknown_kind_is_a_clear_error(fake: FakeProvider) -> None:
    extra = {"odd": {"kind": "carrier-pigeon", "base_url": "http://127.0.0.1:1", "key_env": "ODD_KEY"}}
    registry = ProviderRegistry(settings_for(fake, TASKGATE_PROVIDERS=orjson.dumps(extra).decode(), ODD_KEY="x"))
    with pytest.raises(BadRequestError, match="unknown kind 'carrier-pigeon'"):
        registry.adapter_for("odd")


async def test_price_provider() -> None:
    registry = ProviderRegistry(Settings.from_env({}))
    assert registry.price_provider("openai") == "openai"
    assert registry.price_provider("anthropic") == "anthropic"
    assert registry.price_provider("ollama") is None
    assert registry.price_provider("nope") is None


async def test_local_without_its_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate an install without the optional dependency: importing it fails. The adapter is built all
    # the same (the offline embedding model needs no llama.cpp); a chat call says how to install it.
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    registry = ProviderRegistry(Settings.from_env({}))
    adapter = registry.adapter_for("local")
    with pytest.raises(BadRequestError, match=r"pip install 'taskgate\[local\]'"):
        await adapter.complete(ChatRequest(model="gemma-3-270m", messages=[{"role": "user", "content": "hi"}]))
    await registry.aclose()


async def test_local_kind_builds_the_local_adapter() -> None:
    pytest.importorskip("llama_cpp")
    from taskgate.providers.local.adapter import LocalAdapter

    registry = ProviderRegistry(Settings.from_env({}))
    adapter = registry.adapter_for("local")
    assert isinstance(adapter, LocalAdapter)
    assert registry.adapter_for("local") is adapter
    await registry.aclose()
