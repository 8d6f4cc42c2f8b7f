"""Parse an OpenAI Chat Completions body into a chat-mode Task (spec §8.2).

Validation here is deliberately shallow but strict on shape: a malformed conversation or tool
list must come back as a 400 the openai client raises as `BadRequestError`, not surface later as
an upstream 400 (or worse, a translation crash in the Anthropic adapter). Values the upstream
understands better than we do (model-specific ranges, reasoning levels) are passed through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskgate.api.guard_fields import guards_from_headers
from taskgate.api.request_fields import optional, tool_name
from taskgate.api.span_bodies import span_id
from taskgate.api.v3.run_shapes import function_name
from taskgate.engine.models import parse_model_field
from taskgate.engine.task import ModelChoice, Task
from taskgate.errors import BadRequestError

DEFAULT_FUNCTION_NAME = "chat"
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required"})

MAX_COUNT = 2**31 - 1  # a token or log-probability count: beyond any model, and within every upstream's int32
MAX_CHOICES = 16  # `n`: each choice is one upstream call, made at once; more is a flood, not a completion


@dataclass(frozen=True, slots=True)
class Kind:
    """What a parameter passed through to the upstream must be, as OpenAI's Chat Completions
    reference types it. Checked here so that a wrong one is a 400 naming it, never an upstream
    error or a crash in a translating adapter; a finer range (a temperature's, say) is the
    upstream's to judge, but an integer is bounded here: no upstream takes one beyond 64 bits."""

    label: str
    fits: Callable[[Any], bool]


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _integer(minimum: int, maximum: int) -> Kind:
    return Kind(f"an integer from {minimum} to {maximum}",
                lambda value: _is_integer(value) and minimum <= value <= maximum)


_NUMBER = Kind("a number", _is_number)
_BOOLEAN = Kind("a boolean", lambda value: isinstance(value, bool))
_STRING = Kind("a string", lambda value: isinstance(value, str))
_OBJECT = Kind("an object", lambda value: isinstance(value, dict))
_TOKENS = _integer(1, MAX_COUNT)

# OpenAI parameters forwarded to the upstream as they are, once they have their kind; anything
# else unknown is ignored, so Opper extras (span_uuid, evaluate, ...) and future client fields
# never reach a strict upstream.
PASS_THROUGH: dict[str, Kind] = {
    **dict.fromkeys(("temperature", "top_p", "presence_penalty", "frequency_penalty"), _NUMBER),
    "max_tokens": _TOKENS,
    "max_completion_tokens": _TOKENS,
    "top_logprobs": _integer(0, MAX_COUNT),
    "seed": _integer(-(2**63), 2**63 - 1),
    "stop": Kind("a string or an array of strings", lambda value: isinstance(value, str) or _is_strings(value)),
    "logit_bias": Kind("an object of numbers (token id: bias)",
                       lambda value: isinstance(value, dict) and all(map(_is_number, value.values()))),
    "metadata": Kind("an object of strings",
                     lambda value: isinstance(value, dict) and all(isinstance(item, str) for item in value.values())),
    **dict.fromkeys(("logprobs", "parallel_tool_calls", "store"), _BOOLEAN),
    **dict.fromkeys(("user", "reasoning_effort", "service_tier", "prompt_cache_key", "safety_identifier",
                     "verbosity"), _STRING),
    "modalities": Kind("an array of strings", _is_strings),
    **dict.fromkeys(("audio", "prediction", "web_search_options"), _OBJECT),
}


@dataclass(slots=True)
class ChatCall:
    """What the compat handler needs besides the Task: how to shape the answer."""

    task: Task
    stream: bool
    include_usage: bool
    model_label: str  # shown in stream chunks until the answering model is known
    n: int = 1  # how many choices: each its own engine call (engine/choices.py)


def parse_chat_request(body: Mapping[str, Any], headers: Mapping[str, str], project_id: str,
                       default_model: str) -> ChatCall:
    """Validate `body` and build the Task; raises BadRequestError with the offending field named."""
    messages = _messages(body.get("messages"))
    tools = _tools(body.get("tools"))
    tool_choice = check_tool_choice(body.get("tool_choice"), tools)
    models = model_chain(body.get("model"), body.get("fallback_models"))
    options = _options(body)
    output_schema = _output_schema(body, options)
    stream = optional(body, "stream", bool, "a boolean", name="stream") or False
    task = compat_task(body, headers, project_id, DEFAULT_FUNCTION_NAME, "chat", output_schema=output_schema,
                       models=models, messages=messages, tools=tools, tool_choice=tool_choice, options=options)
    return ChatCall(
        task=task,
        stream=stream,
        include_usage=_include_usage(body, stream),
        model_label=models[0].name if models else default_model,
        n=_choices(body.get("n")),
    )


def compat_task(body: Mapping[str, Any], headers: Mapping[str, str], project_id: str, default_name: str,
                span_type: str, **conversation: Any) -> Task:
    """A compat dialect's chat-mode Task (`conversation`: its messages, tools, models, options...):
    named and parented by the X-Opper headers, tagged by the body, and never a stored function."""
    return Task(
        project_id=project_id,
        function_name=header_name(headers, default_name),
        instructions="",
        tags=dict(optional(body, "tags", dict, "an object", name="tags") or {}),
        parent_span_id=parent_span(headers, body),
        span_type=span_type,
        record_function=False,
        guards=guards_from_headers(headers),
        **conversation,
    )


def header_name(headers: Mapping[str, str], default: str) -> str:
    """The function name an OpenAI client can only send as a header, X-Opper-Name; `default` without one."""
    name = headers.get("x-opper-name", "").strip()
    return function_name(name, "the X-Opper-Name header") if name else default


def header_parent(headers: Mapping[str, str]) -> str | None:
    """The parent span an OpenAI client can only send as a header, X-Opper-Parent-Span-Id."""
    parent = headers.get("x-opper-parent-span-id", "").strip()
    return span_id(parent, "the X-Opper-Parent-Span-Id header") if parent else None


def parent_span(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    """The parent span from the header, else from Opper's `parent_span_id` body extra."""
    if (parent := header_parent(headers)) is not None:
        return parent
    value = optional(body, "parent_span_id", str, "a string", name="parent_span_id")
    return span_id(value, "parent_span_id") if value else None


def _include_usage(body: Mapping[str, Any], stream: bool) -> bool:
    """`stream_options` means nothing to a non-streamed completion, but one of the wrong shape is
    a caller's mistake in either mode, and refused in both."""
    options = optional(body, "stream_options", dict, "an object", name="stream_options") or {}
    include = optional(options, "include_usage", bool, "a boolean", name="stream_options.include_usage")
    return stream and bool(include)


# ---- messages


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequestError("messages must be a non-empty array of message objects")
    for index, message in enumerate(value):
        _check_message(message, f"messages[{index}]")
    return value


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise BadRequestError(f"{where} must be an object")
    role = message.get("role")
    if role not in ROLES:
        raise BadRequestError(f"{where}.role must be one of {', '.join(sorted(ROLES))}, got {role!r}")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if role != "assistant":
            raise BadRequestError(f"{where}.tool_calls is only allowed on assistant messages")
        _check_tool_calls(tool_calls, f"{where}.tool_calls")
    if role == "tool" and not (isinstance(message.get("tool_call_id"), str) and message["tool_call_id"]):
        raise BadRequestError(f"{where} has role 'tool' and needs a string tool_call_id")
    content = message.get("content")
    if content is None:
        if role != "assistant" or not tool_calls:
            raise BadRequestError(f"{where}.content is required unless an assistant message has tool_calls")
    elif isinstance(content, list):
        for position, part in enumerate(content):
            _check_part(part, f"{where}.content[{position}]")
    elif not isinstance(content, str):
        raise BadRequestError(f"{where}.content must be a string, an array of parts or null")
    if message.get("name") is not None:  # rarely sent: its error's name is not built for every message
        optional(message, "name", str, "a string", name=f"{where}.name")


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise BadRequestError(f"{where} must be an object with a string 'type'")
    kind = part["type"]
    if kind == "text" and not isinstance(part.get("text"), str):
        raise BadRequestError(f"{where} has type 'text' and needs a string 'text'")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise BadRequestError(f"{where} has type 'image_url' and needs image_url.url")


def _check_tool_calls(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise BadRequestError(f"{where} must be an array")
    for index, call in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
            raise BadRequestError(f"{here} must be an object with a string 'id'")
        if call.get("type", "function") != "function":
            raise BadRequestError(f"{here}.type must be 'function'")
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequestError(f"{here}.function must be an object with a string 'name'")
        if not isinstance(function.get("arguments", ""), str):
            raise BadRequestError(f"{here}.function.arguments must be a JSON string")


# ---- tools


def _tools(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequestError("tools must be an array")
    if not value:
        return None
    names: set[str] = set()
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise BadRequestError(f"{where} must be an object with type 'function'")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise BadRequestError(f"{where}.function must be an object")
        tool_name(function.get("name"), TOOL_NAME, names, f"{where}.function.name")
        optional(function, "description", str, "a string", name=f"{where}.function.description")
        optional(function, "parameters", dict, "a JSON Schema object", name=f"{where}.function.parameters")
    return value


def check_tool_choice(value: Any, tools: list[dict[str, Any]] | None) -> Any:
    """`value` when it is a word or names one of `tools` (OpenAI chat shapes); else a 400."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in TOOL_CHOICE_WORDS:
            raise BadRequestError(f"tool_choice must be auto, none, required or a function, got {value!r}")
        if value == "required" and not tools:
            raise BadRequestError("tool_choice 'required' needs tools")
        return value
    function = value.get("function") if isinstance(value, dict) and value.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise BadRequestError("tool_choice must be a string or {type: 'function', function: {name}}")
    if not any(tool["function"]["name"] == name for tool in tools or ()):
        raise BadRequestError(f"tool_choice names function '{name}', which is not in tools")
    return value


# ---- model, options, structured output


def model_chain(model: Any, fallbacks: Any) -> list[ModelChoice]:
    """`model` (a TModel) then Opper's `fallback_models`, each a known `provider/model`."""
    chain = parse_model_field(model)
    if fallbacks is not None:
        if not isinstance(fallbacks, list):
            raise BadRequestError("fallback_models must be an array of model names")
        chain.extend(parse_model_field(fallbacks))
    return chain  # names are the engine's to resolve: `provider/model`, or a project's custom model or alias


def pass_through(body: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The `names` present in `body`, each checked against its PASS_THROUGH kind, for the upstream."""
    if body.keys().isdisjoint(names):
        return {}  # the common case, found in C: a body with none of the two dozen options
    options = {}
    for key in names:
        value = body.get(key)
        if value is None:
            continue
        kind = PASS_THROUGH[key]
        if not kind.fits(value):
            raise BadRequestError(f"{key} must be {kind.label}")
        options[key] = value
    return options


def _options(body: Mapping[str, Any]) -> dict[str, Any]:
    return pass_through(body, PASS_THROUGH)


def _choices(n: Any) -> int:
    if n is None:
        return 1
    if not (_is_integer(n) and 1 <= n <= MAX_CHOICES):
        raise BadRequestError(f"n must be an integer from 1 to {MAX_CHOICES}")
    return n


def _output_schema(body: Mapping[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """`response_format: json_schema` or Opper's `output_schema` become a validated schema;
    `json_object` is only a mode switch, so it goes to the upstream as is."""
    schema = optional(body, "output_schema", dict, "a JSON Schema object", name="output_schema")
    response_format = body.get("response_format")
    if response_format is None:
        return schema
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return schema
    if kind == "json_object":
        options["response_format"] = response_format
        return schema
    if kind != "json_schema":
        raise BadRequestError("response_format.type must be text, json_object or json_schema")
    spec = response_format.get("json_schema")
    inner = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(inner, dict):
        raise BadRequestError("response_format.json_schema.schema must be a JSON Schema object")
    if schema is not None and schema != inner:
        raise BadRequestError("give either response_format.json_schema or output_schema, not both")
    return inner
