"""A structured task -> a completion prompt a small base model continues with the right answer.

A 270M base model does not read JSON Schema: shown the engine's system prompt, it copies the input
into the answer (`{"capital": "Sweden"}`). It does continue a plain labelled pattern well
(`Country: France / Capital: Paris / Country: Sweden / Capital:` gives "Stockholm"). So for a
structured call the engine's conversation is read back into its parts (instructions, schemas,
demonstrations, input) and written as the instructions, then blocks of labelled fields, each ending
in the answer's own label (`Capital:`) and a one-line JSON answer, the open one last. Schema titles
and descriptions replace the schema JSON; the caller's examples are the demonstrations, and with
none, a built-in one from another domain shows the pattern. The grammar still guarantees the JSON
is valid; this only makes it more often right (bench/local_accuracy.py measures how often).

A conversation that is not the engine's task shape (a re-ask, tool turns, media) returns None, and
the adapter keeps its plain transcript.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

# How the engine writes a task's system prompt and re-ask (taskgate/engine/prompt.py); the round trip
# is held by tests/unit/test_local_task_prompt.py.
INPUT_SCHEMA_LEAD = "\n\nThe input follows this JSON Schema:\n"
OUTPUT_SCHEMA_LEAD = "\n\nRespond only with a JSON value that matches this JSON Schema, with no other text:\n"
REASK_LEAD = "Your previous answer does not match the required JSON Schema:"
COMMENT_LEAD = "\n(Example: "

ANSWER_LABEL = "Answer"
MAX_ANSWER_LABELS = 3
FIELDS_LABEL = "Answer fields:"
DEFAULT_INPUT_LABEL = "Input"
MAX_LABEL_CHARS = 60
MAX_DESCRIPTION_CHARS = 160
MAX_DEMONSTRATIONS = 8  # the latest ones; each costs prompt time on every call

# The demonstration for a task that brings none: it shows the pattern (the answer is new knowledge
# named by the answer's label, not the input echoed) in a domain of its own, so it suggests no other
# task's answer. One is enough: more built-in answers only leak into the task's (measured in
# bench/local_accuracy.py).
BUILT_IN: tuple[dict[str, Any], dict[str, Any]] = ({"book": "Hamlet"}, {"author": "William Shakespeare"})


@dataclass(slots=True)
class TaskParts:
    """The parts of a task, as read back from the engine's messages."""

    instructions: str
    input_schema: dict[str, Any] | None
    demonstrations: list[tuple[Any, Any]]
    input: Any


def read_task(messages: list[dict[str, Any]]) -> TaskParts | None:
    """The task behind `messages`, or None when they are not an instruction, demonstrations and an input."""
    texts: list[tuple[str, str]] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str) or message.get("tool_calls"):
            return None
        texts.append((str(message.get("role")), content))
    system = ""
    if texts and texts[0][0] in ("system", "developer"):
        system = texts.pop(0)[1]
    roles = [role for role, _ in texts]
    if not roles or len(roles) % 2 != 1 or roles != ["user", "assistant"] * (len(roles) // 2) + ["user"]:
        return None
    if texts[-1][1].startswith(REASK_LEAD):
        return None
    instructions, input_schema = _split_system(system)
    values = [_value(text, demonstration=i < len(texts) - 1) for i, (_, text) in enumerate(texts)]
    demonstrations = list(zip(values[:-1:2], values[1::2], strict=True))
    return TaskParts(instructions, input_schema, demonstrations, values[-1])


def build_task_prompt(task: TaskParts, output_schema: dict[str, Any]) -> str | None:
    """The labelled few-shot prompt; None when a value cannot be written out (nested past JSON's depth).

    The instructions come first, once: right above the open answer they pull a model this small
    off the pattern (asked for Sweden's capital it answers "Sverige")."""
    try:
        head = [_one_line(task.instructions)] if task.instructions.strip() else []
        fields = _fields_line(output_schema)
        if fields:
            head.append(fields)
        label = _answer_label(output_schema)
        demonstrations = [_block(value, task.input_schema, answer, label)
                          for value, answer in task.demonstrations[-MAX_DEMONSTRATIONS:]]
        if not demonstrations:
            value, answer = BUILT_IN
            demonstrations = [_block(value, None, answer, _answer_label({"properties": {key: {} for key in answer}}))]
        blocks = ["\n".join(head)] if head else []
        blocks += [*demonstrations, _block(task.input, task.input_schema, None, label)]
        return "\n\n".join(blocks)
    except (RecursionError, ValueError):  # nested deeper than Python's recursion allows
        return None


def _block(value: Any, schema: dict[str, Any] | None, answer: Any, label: str) -> str:
    lines = _labelled(value, schema)
    lines.append(f"{label}:" if answer is None else f"{label}: {_json(answer)}")
    return "\n".join(lines)


def _answer_label(schema: dict[str, Any]) -> str:
    """What the answer is called: its fields' labels (`Capital`, `Name and city`), which cue the model
    far better than a bare `Answer`; the required fields when some are, so optional extras do not."""
    properties = _properties(schema)
    required = schema.get("required")
    keys = [k for k in properties if isinstance(required, list) and k in required] or list(properties)
    if not keys or len(keys) > MAX_ANSWER_LABELS:
        return ANSWER_LABEL
    labels = [_label(k, properties[k]) for k in keys]
    labels[1:] = [label[:1].lower() + label[1:] for label in labels[1:]]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _labelled(value: Any, schema: dict[str, Any] | None) -> list[str]:
    """`Label: value` per top-level field, in the schema's order; any other input under one label."""
    if not isinstance(value, dict) or not value:
        return [f"{DEFAULT_INPUT_LABEL}: {_shown(value)}"]
    properties = _properties(schema)
    ordered = [k for k in properties if k in value] + [k for k in value if k not in properties]
    return [f"{_label(key, properties.get(key))}: {_shown(value[key])}" for key in ordered]


def _fields_line(schema: dict[str, Any]) -> str:
    """`Answer fields: sentiment (how the customer felt), ...`: what the answer's fields mean.

    Only fields the grammar confines (enums, booleans, numbers) are described: a model this small
    copies a free-text field's description into the answer instead of answering."""
    described = []
    for key, prop in _properties(schema).items():
        description = prop.get("description") if isinstance(prop, dict) else None
        if isinstance(description, str) and description.strip() and _confined(prop):
            described.append(f"{_one_line(key, MAX_LABEL_CHARS)} ({_one_line(description, MAX_DESCRIPTION_CHARS)})")
    return f"{FIELDS_LABEL} {', '.join(described)}" if described else ""


def _confined(prop: dict[str, Any]) -> bool:
    kinds = prop.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return "enum" in prop or "const" in prop or all(k in ("boolean", "integer", "number", "null") for k in kinds)


def _label(key: str, prop: Any) -> str:
    """The property's title, else its name made readable: `first_name` -> `First name`."""
    title = prop.get("title") if isinstance(prop, dict) else None
    text = title if isinstance(title, str) and title.strip() else re.sub(r"[_\s]+", " ", key)
    text = _one_line(text, MAX_LABEL_CHARS).replace(":", "")
    return (text[:1].upper() + text[1:]) or DEFAULT_INPUT_LABEL


def _shown(value: Any) -> str:
    """A value on its label's line; a string's further lines are indented, so no line of the caller's
    text can start a label of its own (such as `Answer:`)."""
    text = value if isinstance(value, str) else _json(value)
    return text.strip().replace("\r", "").replace("\n", "\n  ")


def _json(value: Any) -> str:
    """JSON with a space after `:` and `,`, as most text the model learnt from writes it."""
    return json.dumps(value, ensure_ascii=False)


def _properties(schema: Any) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return properties if isinstance(properties, dict) else {}


def _one_line(text: str, limit: int | None = None) -> str:
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _split_system(system: str) -> tuple[str, dict[str, Any] | None]:
    """(instructions, input schema) from the engine's system prompt; the output schema is dropped."""
    at = system.rfind(OUTPUT_SCHEMA_LEAD)
    if at >= 0 and isinstance(_loads(system[at + len(OUTPUT_SCHEMA_LEAD):]), dict):
        system = system[:at]
    at = system.rfind(INPUT_SCHEMA_LEAD)
    if at >= 0:
        schema = _loads(system[at + len(INPUT_SCHEMA_LEAD):])
        if isinstance(schema, dict):
            return system[:at], schema
    return system, None


def _value(text: str, *, demonstration: bool) -> Any:
    """A message's value: the engine writes structured values as JSON and strings as they are."""
    at = text.rfind(COMMENT_LEAD) if demonstration else -1
    if at >= 0 and text.endswith(")"):
        text = text[:at]  # a demonstration's comment: context for hosted models, noise for this one
    parsed = _loads(text)
    return text if parsed is None else parsed


def _loads(text: str) -> Any:
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
