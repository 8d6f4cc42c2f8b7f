"""Alias expansion (engine/model_chains.py): order, nesting, options, loops and the chain bound."""

from __future__ import annotations

import pytest

from taskgate.engine.model_chains import MAX_CHAIN_MODELS, AliasLoopError, expand_chain
from taskgate.engine.task import ModelChoice
from taskgate.errors import BadRequestError


def names(chain: list[ModelChoice]) -> list[str]:
    return [choice.name for choice in chain]


def test_a_chain_without_aliases_is_left_as_it_is() -> None:
    chain = [ModelChoice("openai/a"), ModelChoice("anthropic/b")]
    assert expand_chain(chain, {}) == chain


def test_an_alias_expands_in_place_keeping_the_order() -> None:
    chain = [ModelChoice("openai/first"), ModelChoice("fast"), ModelChoice("openai/last")]
    expanded = expand_chain(chain, {"fast": ["openai/a", "anthropic/b"]})
    assert names(expanded) == ["openai/first", "openai/a", "anthropic/b", "openai/last"]


def test_nested_aliases_expand_depth_first() -> None:
    aliases = {"outer": ["inner", "openai/c"], "inner": ["openai/a", "custom-model"]}
    assert names(expand_chain([ModelChoice("outer")], aliases)) == ["openai/a", "custom-model", "openai/c"]


def test_an_entrys_options_and_headers_reach_every_model_it_expands_to() -> None:
    entry = ModelChoice("fast", options={"temperature": 0.1}, extra_headers={"x-trace": "1"})
    expanded = expand_chain([entry], {"fast": ["openai/a", "openai/b"]})
    assert all(c.options == {"temperature": 0.1} and c.extra_headers == {"x-trace": "1"} for c in expanded)


def test_the_same_alias_twice_side_by_side_is_not_a_loop() -> None:
    aliases = {"pair": ["one", "one"], "one": ["openai/a"]}
    assert names(expand_chain([ModelChoice("pair")], aliases)) == ["openai/a", "openai/a"]


@pytest.mark.parametrize("aliases", [
    {"a": ["a"]},
    {"a": ["b"], "b": ["a"]},
    {"a": ["openai/x", "b"], "b": ["c"], "c": ["openai/y", "a"]},
])
def test_a_loop_is_refused_naming_its_path(aliases: dict[str, list[str]]) -> None:
    with pytest.raises(AliasLoopError, match="names itself") as caught:
        expand_chain([ModelChoice("a")], aliases)
    assert caught.value.status == 400
    assert "a -> " in caught.value.detail


def test_aliases_that_multiply_stop_at_the_chain_bound_quickly() -> None:
    # 20 levels of doubling would be a million models: expansion stops at the bound instead.
    aliases = {f"level{i}": [f"level{i + 1}", f"level{i + 1}"] for i in range(20)}
    aliases["level20"] = ["openai/a"]
    with pytest.raises(BadRequestError, match=f"more than {MAX_CHAIN_MODELS} models"):
        expand_chain([ModelChoice("level0")], aliases)


def test_a_chain_of_exactly_the_bound_is_accepted() -> None:
    aliases = {"many": [f"openai/m{i}" for i in range(MAX_CHAIN_MODELS)]}
    assert len(expand_chain([ModelChoice("many")], aliases)) == MAX_CHAIN_MODELS
