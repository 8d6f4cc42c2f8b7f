"""Picking a function's stored examples to show the model as few-shot demonstrations.

The examples closest to the call's input are chosen by the store's full-text ranking (BM25 on
SQLite FTS5, ts_rank on Postgres). Ranking only sees words, so the input is flattened to its
words first; when too few examples share a word with the input, the remaining slots are filled
with other stored examples, because a demonstration of the task still beats none (this is what a
nearest-neighbour search would do too: it always returns `count` results).
"""

from __future__ import annotations

import re
from typing import Any

from taskgate.engine.task import Example
from taskgate.store.base import ExampleRecord, Store

MAX_QUERY_TERMS = 64  # a long input would make a slow full-text query without ranking any better
_WORD = re.compile(r"\w+", re.UNICODE)


def query_text(value: Any) -> str:
    """The distinct words of an input's values, in order. Object keys are left out on purpose:
    every example of a function shares them, so they only add noise to the ranking."""
    words: dict[str, None] = {}
    for text in _texts(value):
        for word in _WORD.findall(text):
            words.setdefault(word.lower(), None)
            if len(words) >= MAX_QUERY_TERMS:
                return " ".join(words)
    return " ".join(words)


def _texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    return [str(value)]


async def select_examples(store: Store, project_id: str, function_name: str, task_input: Any,
                          count: int) -> list[Example]:
    """Up to `count` stored examples of the function, the ones closest to `task_input` first."""
    if count <= 0:
        return []
    function = await store.get_function(project_id, function_name)
    if function is None:
        return []
    query = query_text(task_input)
    chosen: list[ExampleRecord] = []
    if query:
        chosen = await store.search_examples(project_id, function.id, query, count)
    if len(chosen) < count:
        taken = {record.id for record in chosen}
        others = await store.list_examples(project_id, function.id, limit=count + len(chosen))
        chosen += [record for record in others if record.id not in taken][: count - len(chosen)]
    return [Example(input=record.input, output=record.output, comment=record.comment) for record in chosen]
