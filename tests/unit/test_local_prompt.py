"""The pure pieces of the local provider: the few-shot prompt, the output shaper and the grammar cache."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from taskgate.providers.local.prompt import JSON_ONLY_HINT, TURN_STOP, OutputShaper, build_prompt


def shape(pieces: list[str], stops: list[str], **kwargs: bool) -> tuple[list[str], str, bool]:
    shaper = OutputShaper(stops, **kwargs)
    out = [shaper.feed(p) for p in pieces]
    done = shaper.done
    return out, shaper.finish(), done


def test_prompt_is_a_few_shot_transcript() -> None:
    prompt = build_prompt(
        [
            {"role": "system", "content": "Translate to French."},
            {"role": "user", "content": "cat"},
            {"role": "assistant", "content": "chat"},
            {"role": "user", "content": [{"type": "text", "text": "dog"}]},
        ]
    )
    assert prompt == "Translate to French.\n\nInput: cat\nOutput: chat\n\nInput: dog\nOutput:"


def test_prompt_json_hint_and_assistant_prefill() -> None:
    hinted = build_prompt([{"role": "user", "content": "x"}], json_hint=True)
    assert hinted.startswith(JSON_ONLY_HINT) and hinted.endswith("Input: x\nOutput:")
    prefilled = build_prompt([{"role": "user", "content": "x"}, {"role": "assistant", "content": "Once"}])
    assert prefilled.endswith("Output: Once")


def test_shaper_cuts_a_stop_split_across_pieces() -> None:
    out, tail, done = shape([" Paris", "\n", "Inp", "ut: Spain"], [TURN_STOP])
    assert "".join(out) + tail == "Paris"
    assert done


def test_shaper_releases_a_false_stop_prefix_and_trims_whitespace() -> None:
    out, tail, done = shape(["  a", "\n", "In", " the end", "  \n"], [TURN_STOP])
    assert out[0] == "a"
    assert "".join(out) + tail == "a\nIn the end"
    assert not done


def test_shaper_ends_json_at_the_root_close() -> None:
    out, tail, done = shape(['{"a": "}', '{[\\"', '"}', "\n\nInput: more"], [TURN_STOP], json_mode=True)
    assert "".join(out) + tail == '{"a": "}{[\\""}'
    assert done


def test_shaper_skips_prose_before_unconstrained_json() -> None:
    out, tail, _ = shape(["Sure! Here", ' it is: {"x"', ": [1]}", " bye"], [], json_mode=True, skip_to_json=True)
    assert "".join(out) + tail == '{"x": [1]}'


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_grammar_cache_hits_refusals_and_checks() -> None:
    from taskgate.providers.local.grammar import GrammarCache, GrammarUnavailable

    checked: list[str] = []

    def check(gbnf: str) -> str | None:
        checked.append(gbnf)
        return "refused by check" if "refuse" in gbnf else None

    cache = GrammarCache(maxsize=2, check=check)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    same = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    gbnf = cache.get(schema)
    assert gbnf.startswith("a-kv ::=") or "root ::=" in gbnf
    assert cache.get(same) is gbnf  # an equal schema (another object) is a hit
    assert len(checked) == 1
    with pytest.raises(GrammarUnavailable, match="Unrecognized schema"):
        cache.get({"not": {"type": "null"}})
    with pytest.raises(GrammarUnavailable, match="refused by check"):
        cache.get({"type": "object", "properties": {"refuse": {"type": "string"}}})
    assert len(cache) == 2  # LRU bound
    cache.get(schema)  # was evicted: converted and checked again
    assert len(checked) == 3


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_the_grammar_keeps_the_callers_property_order_and_each_order_has_its_own() -> None:
    """The grammar fixes the order the model writes the fields in: one order must not get another's."""
    from taskgate.providers.local.grammar import GrammarCache

    step: dict[str, Any] = {"type": "object", "properties": {"why": {"type": "string"}, "action": {"type": "string"}},
            "required": ["why", "action"]}
    reasoned = {"type": "object", "required": ["thoughts", "steps", "answer"], "properties": {
        "thoughts": {"type": "string"}, "steps": {"type": "array", "items": step}, "answer": {"type": "string"}}}
    reversed_step = {**step, "properties": dict(reversed(step["properties"].items()))}
    answer_first = {**reasoned, "properties": {"answer": {"type": "string"},
                                               "steps": {"type": "array", "items": reversed_step},
                                               "thoughts": {"type": "string"}}}
    cache = GrammarCache()
    for schema, root, item in (
        (reasoned, "thoughts-kv \",\" space steps-kv \",\" space answer-kv",
         "steps-item-why-kv \",\" space steps-item-action-kv"),
        (answer_first, "answer-kv \",\" space steps-kv \",\" space thoughts-kv",
         "steps-item-action-kv \",\" space steps-item-why-kv"),
        (reasoned, "thoughts-kv \",\" space steps-kv \",\" space answer-kv",
         "steps-item-why-kv \",\" space steps-item-action-kv"),
    ):
        gbnf = cache.get(schema)
        rules = dict(line.split(" ::= ", 1) for line in gbnf.splitlines())
        assert root in rules["root"] and item in rules["steps-item"]
    assert len(cache) == 2
