"""Expanding a model chain through a project's aliases: the pure part of name resolution.

An alias stands for its fallback models, which may name other aliases; an entry's options and
extra headers apply to every model it expands to. Expansion refuses what could not end or would not
be worth running: an alias met again on its own path (a loop), and a chain longer than
`MAX_CHAIN_MODELS` (aliases of aliases multiply). Both are checked while expanding, so the work is
bounded by the chain limit whatever the aliases hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from taskgate.engine.task import ModelChoice
from taskgate.errors import BadRequestError

MAX_CHAIN_MODELS = 32


class AliasLoopError(BadRequestError):
    code = "alias_loop"


def expand_chain(choices: list[ModelChoice], aliases: Mapping[str, list[str]]) -> list[ModelChoice]:
    """`choices` with every alias replaced by its fallback models, in order."""
    out: list[ModelChoice] = []
    for choice in choices:
        _expand(choice, aliases, (), out)
    return out


def _expand(choice: ModelChoice, aliases: Mapping[str, list[str]], path: tuple[str, ...],
            out: list[ModelChoice]) -> None:
    fallbacks = aliases.get(choice.name)
    if fallbacks is None:
        if len(out) == MAX_CHAIN_MODELS:
            raise BadRequestError(f"the model chain expands to more than {MAX_CHAIN_MODELS} models "
                                  f"(through aliases {', '.join(path) or 'none'})")
        out.append(choice)
        return
    if choice.name in path:
        loop = " -> ".join((*path[path.index(choice.name):], choice.name))
        raise AliasLoopError(f"model alias '{choice.name}' names itself through its fallback models: {loop}")
    for name in fallbacks:
        _expand(replace(choice, name=name), aliases, (*path, choice.name), out)
