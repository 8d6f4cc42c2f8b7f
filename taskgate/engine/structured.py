"""Reading a model's answer and checking it against the output schema.

The answer is JSON, or in XML mode XML (`xml_answer.parse_xml_answer`); either way it is read into
a JSON value by an `AnswerParser`, and that value is what the schema check sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs
import orjson

from taskgate.engine.schemas import validation_errors
from taskgate.json_text import MAX_JSON_DEPTH, depth_over

AnswerParser = Callable[[str], tuple[Any, "str | None"]]  # (value, None) or (None, why the text is not one)


def parse_json_answer(text: str) -> tuple[Any, str | None]:
    """(value, None) when `text` holds one JSON value, else (None, why not).

    Native structured output gives bare JSON; prompted models may wrap it in a code fence or
    a sentence, so the outermost object or array is tried as well. An answer nested deeper than a
    request may be is refused like any other misfit, so the model is asked again.
    """
    stripped = text.strip()
    depth = depth_over(stripped.encode())
    if depth is not None:  # parsed, it could be neither recorded nor cached
        return None, f"the answer nests objects and arrays {depth} levels deep; at most {MAX_JSON_DEPTH} are allowed"
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0].strip()
    try:
        return orjson.loads(stripped), None
    except orjson.JSONDecodeError as exc:
        first_error = str(exc)
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = max(stripped.rfind("}"), stripped.rfind("]"))
        if end > start:
            try:
                return orjson.loads(stripped[start : end + 1]), None
            except orjson.JSONDecodeError:
                pass
    return None, f"the answer is not valid JSON ({first_error})"


def check_answer(text: str, validator: jsonschema_rs.Draft202012Validator,
                 parse: AnswerParser = parse_json_answer) -> tuple[Any, list[str]]:
    """(the validated value, []) or (None, the problems to show the model)."""
    value, problem = parse(text)
    if problem is not None:
        return None, [problem]
    errors = validation_errors(validator, value)
    return (value, []) if not errors else (None, errors)
