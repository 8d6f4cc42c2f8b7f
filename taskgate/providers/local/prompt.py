"""Chat messages -> a completion prompt for a base model, and the model's text -> the answer.

A base (not instruction-tuned) model continues patterns rather than obeying turns, so the
conversation becomes a few-shot transcript: the system text, then `Input:`/`Output:` pairs,
ending in an open `Output:`. The model then tends to start the next `Input:` by itself, which is
why the shaper stops there, trims whitespace, and ends a JSON answer at its closing bracket.
"""

from __future__ import annotations

from typing import Any

import orjson

from taskgate.errors import BadRequestError

INPUT_LABEL = "Input:"
OUTPUT_LABEL = "Output:"
TURN_STOP = "\n" + INPUT_LABEL
JSON_ONLY_HINT = "Answer with a single JSON value that matches the schema, and nothing else."


def build_prompt(messages: list[dict[str, Any]], *, json_hint: bool = False) -> str:
    """The few-shot transcript of `messages`; `json_hint` adds a plain instruction for unconstrained JSON."""
    preamble: list[str] = []
    turns: list[str] = []
    awaiting_answer = False  # the last turn is an input with no answer yet
    for message in messages:
        role = message.get("role")
        text = _content_text(message)
        if role in ("system", "developer"):
            preamble.append(text)
        elif role in ("user", "tool"):
            turns.append(f"{INPUT_LABEL} {text}")
            awaiting_answer = True
            continue
        elif role == "assistant":
            answer = f"{OUTPUT_LABEL} {text or _tool_calls_text(message)}"
            if awaiting_answer:
                turns[-1] += "\n" + answer  # an input and its answer form one block
            else:
                turns.append(answer)
        else:
            raise BadRequestError(f"unsupported message role {role!r} for a local model")
        awaiting_answer = False
    if json_hint:
        preamble.append(JSON_ONLY_HINT)
    parts = [p for p in ("\n".join(preamble).strip(), *turns) if p]
    prompt = "\n\n".join(parts)
    if messages and messages[-1].get("role") == "assistant":
        return prompt  # the model continues the assistant's text
    return prompt + ("\n" if turns else "\n\n") + OUTPUT_LABEL


def _content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequestError(f"local models accept only text content, not {kind!r}")
            texts.append(str(part.get("text", "")))
        return "\n".join(texts).strip()
    return orjson.dumps(content).decode()


def _tool_calls_text(message: dict[str, Any]) -> str:
    functions = [call.get("function", {}) for call in message.get("tool_calls") or []]
    return "\n".join(f"{f.get('name', '')}({f.get('arguments', '')})" for f in functions)


class OutputShaper:
    """Turns raw generated pieces into answer text, incrementally, so streams equal whole answers.

    It drops leading whitespace, holds back trailing whitespace and any tail that might begin a
    stop sequence, cuts at the first stop sequence, and (for JSON) ends at the root's closing
    bracket. With `skip_to_json`, prose before the first `{` or `[` is dropped (unconstrained JSON).
    """

    def __init__(self, stops: list[str], *, json_mode: bool = False, skip_to_json: bool = False):
        self._stops = [s for s in stops if s]
        self._json_mode = json_mode
        self._skip_to_json = skip_to_json
        self._started = False
        self._pending = ""
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._json_root = False
        self.done = False

    def feed(self, piece: str) -> str:
        """Text that is safe to emit now; sets `done` when the answer is complete."""
        if self.done or not piece:
            return ""
        if not self._started:
            piece = piece.lstrip()
            if self._skip_to_json:
                starts = [i for i in (piece.find("{"), piece.find("[")) if i >= 0]
                piece = piece[min(starts):] if starts else ""
            if not piece:
                return ""
            self._started = True
            self._json_root = self._json_mode and piece[0] in "{["
        if self._json_root:
            piece = self._scan_json(piece)
        self._pending += piece
        cut = self._first_stop()
        if cut is not None:
            self._pending = self._pending[:cut]
            self.done = True
        if self.done:
            return self._flush()
        trailing_space = len(self._pending) - len(self._pending.rstrip())
        split = len(self._pending) - max(self._stop_prefix_len(), trailing_space)
        out, self._pending = self._pending[:split], self._pending[split:]
        return out

    def finish(self) -> str:
        """The held-back remainder once generation has ended."""
        self.done = True
        return self._flush()

    def _flush(self) -> str:
        out, self._pending = self._pending.rstrip(), ""
        return out

    def _scan_json(self, piece: str) -> str:
        for i, ch in enumerate(piece):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self.done = True
                    return piece[: i + 1]
        return piece

    def _first_stop(self) -> int | None:
        hits = [i for i in (self._pending.find(s) for s in self._stops) if i >= 0]
        return min(hits) if hits else None

    def _stop_prefix_len(self) -> int:
        """Length of the longest tail of the pending text that could still grow into a stop."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(stop[:n]):
                    best = n
                    break
        return best
