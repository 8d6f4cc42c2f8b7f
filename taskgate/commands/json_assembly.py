"""The answer of a v2 stream put back together from its `json_path` deltas, as they arrive.

A path is `response` then `.key` per object member and `[i]` per array item, with `\\`, `.` and `[`
in a key preceded by a backslash (taskgate/api/v2/json_paths.py writes them). A string's deltas are
its pieces, glued in order; any other scalar arrives whole. The stream carries scalars only, so an
empty object or array shows up only in the final answer, which the command reads from the span.
"""

from __future__ import annotations

import itertools
from typing import Any

ROOT = "response"
Step = str | int


class PathError(ValueError):
    """A json_path this reader cannot follow."""


def path_steps(path: str) -> list[Step]:
    """`response.people[0].a\\.b` -> ["people", 0, "a.b"]."""
    if not path.startswith(ROOT):
        raise PathError(f"a json_path starts with {ROOT!r}: {path[:80]!r}")
    steps: list[Step] = []
    at = len(ROOT)
    while at < len(path):
        if path[at] == "[":
            close = path.find("]", at)
            digits = path[at + 1:close] if close > 0 else ""
            if not digits.isdigit():
                raise PathError(f"a json_path index must be digits: {path[:80]!r}")
            steps.append(int(digits))
            at = close + 1
        elif path[at] == ".":
            key, at = _key(path, at + 1)
            steps.append(key)
        else:
            raise PathError(f"unexpected {path[at]!r} in json_path {path[:80]!r}")
    return steps


def _key(path: str, at: int) -> tuple[str, int]:
    chars: list[str] = []
    while at < len(path) and path[at] not in ".[":
        if path[at] == "\\" and at + 1 < len(path):
            at += 1
        chars.append(path[at])
        at += 1
    return "".join(chars), at


class JsonAssembly:
    """The answer so far; `add(path, delta)` for each chunk, `value` at any moment."""

    def __init__(self) -> None:
        self.value: Any = None

    def add(self, path: str, delta: Any) -> None:
        steps = path_steps(path)
        if not steps:
            self.value = self.value + delta if isinstance(self.value, str) and isinstance(delta, str) else delta
            return
        self.value = _container_for(self.value, steps[0])
        holder: Any = self.value
        for step, following in itertools.pairwise(steps):
            _ensure(holder, step)
            holder[step] = _container_for(holder[step], following)
            holder = holder[step]
        last = steps[-1]
        _ensure(holder, last)
        current = holder[last]
        holder[last] = current + delta if isinstance(current, str) and isinstance(delta, str) else delta


def _container_for(current: Any, step: Step) -> Any:
    """The list or dict that `step` indexes: `current` if it already is one of the right kind."""
    wanted = list if isinstance(step, int) else dict
    return current if isinstance(current, wanted) else wanted()


def _ensure(holder: Any, step: Step) -> None:
    if isinstance(holder, list):
        assert isinstance(step, int)
        if step > len(holder):  # items arrive in order: a jump would only grow a list of nulls
            raise PathError(f"item [{step}] arrived before item [{len(holder)}]")
        if step == len(holder):
            holder.append(None)
    elif step not in holder:
        holder[step] = None
