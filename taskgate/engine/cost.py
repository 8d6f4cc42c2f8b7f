"""USD cost of a generation from the maintained `genai-prices` table; None when no price is known.

Every price Taskgate reports comes from here, through `Engine.price`: the provider's catalogue entry
names its price provider (`ProviderPreset.price_provider`), and a model that runs on this machine
(`FREE`) costs nothing.

Looking a model up in genai-prices costs ~0.4 ms, so each model's price entry is found once and
kept; flat per-token prices are then applied directly, and only tiered prices take the library's
own (slower) calculation.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import genai_prices

from taskgate.lru import BoundedLRU
from taskgate.providers.base import Usage
from taskgate.providers.catalog import FREE

_NO_PRICE = object()  # a model looked up and found without a price (the cache's own None means "not looked up")
PRICE_ENTRIES = 4096  # model names come from callers: the book remembers the latest few thousand


def _entry_bytes(key: tuple[str, str], _: Any) -> int:
    return len(key[0]) + len(key[1]) + 600  # a price entry's objects, about


class PriceBook:
    def __init__(self) -> None:
        self._entries: BoundedLRU[tuple[str, str], Any] = BoundedLRU(PRICE_ENTRIES, PRICE_ENTRIES * 2048,
                                                                      _entry_bytes)

    @staticmethod
    def warm() -> None:
        """Load the price table at start-up rather than on the first priced call."""
        PriceBook._lookup("openai", "gpt-4o-mini")

    def cost(self, price_provider: str | None, model: str, usage: Usage) -> float | None:
        """Cost in USD for `usage` on `model`, or None: never a guess."""
        if price_provider is None:
            return None
        if price_provider == FREE:
            return 0.0
        key = (price_provider, model)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._lookup(price_provider, model)
            if entry is None:
                entry = _NO_PRICE
            self._entries.put(key, entry)
        if entry is _NO_PRICE:
            return None
        return _apply(entry, usage)

    @staticmethod
    def _lookup(price_provider: str, model: str) -> Any:
        try:
            probe = genai_prices.Usage(input_tokens=1, output_tokens=1)
            price = genai_prices.calc_price(probe, model_ref=model, provider_id=price_provider).model_price
        except (LookupError, ValueError):
            return None
        fields = (price.input_mtok, price.output_mtok, price.cache_read_mtok, getattr(price, "cache_write_mtok", None))
        flat = [value for value in fields if isinstance(value, Decimal)]
        if len(flat) != sum(value is not None for value in fields):
            return price  # tiered: leave it to the library
        per_mtok = [float(value) if isinstance(value, Decimal) else None for value in fields]
        base = per_mtok[0] or 0.0
        return _FlatPrice(
            input=base,
            output=per_mtok[1] or 0.0,
            cache_read=base if per_mtok[2] is None else per_mtok[2],
            cache_write=base if per_mtok[3] is None else per_mtok[3],
        )


@dataclass(frozen=True, slots=True)
class _FlatPrice:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float


def _apply(price: Any, usage: Usage) -> float:
    if isinstance(price, _FlatPrice):
        uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        total = (
            uncached * price.input
            + usage.cache_read_tokens * price.cache_read
            + usage.cache_write_tokens * price.cache_write
            + usage.output_tokens * price.output
        )
        return total / 1_000_000
    tiered = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens or None,
        cache_write_tokens=usage.cache_write_tokens or None,
    )
    return float(price.calc_price(tiered)["total_price"])
