"""Turning a task into chat messages: instructions, the schema, demonstrations, then the input."""

from __future__ import annotations

from typing import Any

import orjson

from taskgate.engine.task import Example, Task
from taskgate.engine.xml_shapes import Shape, to_xml, xml_instructions
from taskgate.errors import BadRequestError

MEDIA_KEYS = ("_opper_media_input", "_opper_image_input")


def render_value(value: Any) -> str:
    """Strings go to the model as they are; everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def render_answer(value: Any, xml: Shape | None) -> str:
    """An answer as the model is asked to write it: in XML mode as XML of `xml`'s shape (as JSON
    when it cannot be one), otherwise as `render_value` writes it."""
    if xml is not None:
        try:
            return to_xml(value, xml)
        except ValueError:
            pass
    return render_value(value)


def system_prompt(task: Task, xml: Shape | None = None) -> str:
    """Instructions, the input's schema, and how to answer: JSON of the output schema, or in XML
    mode XML shaped by it (see `xml_shapes`)."""
    parts = [task.instructions]
    if task.input_schema is not None:
        parts.append("The input follows this JSON Schema:\n" + render_value(task.input_schema))
    if xml is not None:
        parts.append(xml_instructions(xml))
    elif task.output_schema is not None:
        parts.append(
            "Respond only with a JSON value that matches this JSON Schema, with no other text:\n"
            + render_value(task.output_schema)
        )
    return "\n\n".join(parts)


def user_content(value: Any) -> str | list[dict[str, Any]]:
    """The input as a user message; a v2 media data URL becomes a media part next to the rest, which
    the engine types by its content (`engine.media`: image, audio or file)."""
    if isinstance(value, dict):
        media = next((value[key] for key in MEDIA_KEYS if key in value), None)
        if media is not None:
            if not isinstance(media, str) or not media:
                raise BadRequestError(f"input.{MEDIA_KEYS[0]} must be a media data URL "
                                      "('data:<type>;base64,<data>') or an http(s) image URL")
            rest = {k: v for k, v in value.items() if k not in MEDIA_KEYS}
            return [
                {"type": "text", "text": render_value(rest) if rest else "See the attached media."},
                {"type": "image_url", "image_url": {"url": media}},
            ]
    return render_value(value) if value is not None else "(no input)"


def input_turns(task: Task) -> list[dict[str, Any]]:
    """The caller's own part of the conversation: its messages in chat mode, else the input as a user turn."""
    if task.messages is not None:
        return list(task.messages)
    return [{"role": "user", "content": user_content(task.input)}]


def build_messages(task: Task, examples: list[Example], xml: Shape | None = None,
                   turns: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The whole conversation for a task: system, demonstrations as turns, then the input
    (`turns`, when the engine has already worked them out, else `input_turns`). In XML mode
    (`xml`), the demonstrations answer in XML too.

    In chat mode (compat), the caller's messages are used as they are.
    """
    turns = input_turns(task) if turns is None else turns
    if task.messages is not None:
        return turns
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(task, xml)}]
    for example in examples:
        shown = render_value(example.input)
        if example.comment:
            shown = f"{shown}\n(Example: {example.comment})"
        messages.append({"role": "user", "content": shown})
        messages.append({"role": "assistant", "content": render_answer(example.output, xml)})
    messages.extend(turns)
    return messages


def reask_message(errors: list[str], *, xml: bool = False) -> dict[str, Any]:
    """What the model sees after an answer that broke the schema (in XML mode: the XML asked for)."""
    listed = "\n".join(f"- {error}" for error in errors)
    if xml:
        return {
            "role": "user",
            "content": "Your previous answer is not the XML asked for, or its values do not match the "
            f"required schema:\n{listed}\nReply again with only the corrected <response> element.",
        }
    return {
        "role": "user",
        "content": "Your previous answer does not match the required JSON Schema:\n"
        f"{listed}\nReply again with only the corrected JSON value.",
    }
