"""Parse an OpenAI Responses (or OpenResponses) body into a chat-mode Task.

Both paths take the same body: OpenResponses (spec §8.4, what the 2.1.1 Agent sends) is the
Responses API without its hosted tools. Like the OpenAI API itself, an unknown parameter is a
400, and so is an option that needs state or machinery this gateway does not have (stored
responses, background runs, hosted tools, reasoning summaries): the caller learns which one
instead of getting an answer that silently ignored it. Sampling options are checked by the
kinds chat completions uses and passed on the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskgate.api.openai.chat_request import (
    PASS_THROUGH,
    TOOL_NAME,
    check_tool_choice,
    compat_task,
    model_chain,
    pass_through,
)
from taskgate.api.openai.responses_input import input_messages
from taskgate.api.request_fields import object_items, optional, tool_name
from taskgate.engine.task import Task
from taskgate.errors import BadRequestError

DEFAULT_FUNCTION_NAME = "responses"

# Sampling and routing options the upstream chat call takes as they are.
OPTIONS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "metadata", "user",
           "parallel_tool_calls", "store", "service_tier", "prompt_cache_key", "safety_identifier")
# Everything else the body may hold: what this module reads, and Opper's extras.
READ = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text", "reasoning",
                  "max_output_tokens", "stream", "tags", "fallback_models", "parent_span_id"})

# Parameters we cannot honour: the value each may still take (what it means anyway), and why not.
REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "previous_response_id": (lambda _: False, "responses are not stored; send the whole conversation as input"),
    "conversation": (lambda _: False, "conversations are not stored; send the whole conversation as input"),
    "prompt": (lambda _: False, "stored prompt templates are not supported"),
    "background": (lambda value: value is False, "background responses are not supported"),
    "include": (lambda value: value == [], "no additional output data can be included"),
    "truncation": (lambda value: value == "disabled", "only 'disabled' is supported: the input is never cut"),
    "max_tool_calls": (lambda _: False, "the number of tool calls cannot be capped"),
    "top_logprobs": (lambda _: False, "log probabilities are not returned"),
    "stream_options": (lambda value: value in ({}, {"include_obfuscation": False}),
                       "stream obfuscation is not supported; leave it out or set include_obfuscation false"),
}
KNOWN = READ | frozenset(OPTIONS) | frozenset(REFUSED)


@dataclass(slots=True)
class ResponsesCall:
    """What the handler needs besides the Task: how to shape the Response object."""

    task: Task
    stream: bool
    echo: dict[str, Any]  # the request's settings, which every Response object repeats
    model_label: str  # shown until the answering model is known


def parse_responses_request(body: Mapping[str, Any], headers: Mapping[str, str], project_id: str,
                            default_model: str) -> ResponsesCall:
    """Validate `body` and build the Task; raises BadRequestError naming the offending field."""
    _refuse_unsupported(body)
    instructions = optional(body, "instructions", str, "a string", name="instructions")
    messages = input_messages(body.get("input"), instructions)
    tools = _tools(body.get("tools"))
    tool_choice = check_tool_choice(_tool_choice(body.get("tool_choice")), tools)
    models = model_chain(body.get("model"), body.get("fallback_models"))
    options = pass_through(body, OPTIONS)
    max_output_tokens = _max_output_tokens(body.get("max_output_tokens"), options)
    reasoning = _reasoning(body, options)
    text = optional(body, "text", dict, "an object", name="text") or {}
    output_schema = _output_schema(text, options)
    task = compat_task(body, headers, project_id, DEFAULT_FUNCTION_NAME, "responses", output_schema=output_schema,
                       models=models, messages=messages, tools=tools, tool_choice=tool_choice, options=options,
                       hold_structured_text=True)  # the JSON goes out once it validated: misfits are re-asked
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "metadata": options.get("metadata", {}),
        "parallel_tool_calls": options.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "service_tier": options.get("service_tier"),
        "store": options.get("store", True),
        "temperature": options.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}, **_verbosity(options)},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": options.get("top_p"),
        "truncation": "disabled",
        "user": options.get("user"),
    }
    return ResponsesCall(
        task=task,
        stream=optional(body, "stream", bool, "a boolean", name="stream") or False,
        echo=echo,
        model_label=models[0].name if models else default_model,
    )


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    for key, value in body.items():
        if key not in KNOWN:
            raise BadRequestError(f"unknown parameter: {key!r}")
        refused = REFUSED.get(key)
        if refused is not None and value is not None and not refused[0](value):
            raise BadRequestError(f"{key} is not supported: {refused[1]}")


def _tools(value: Any) -> list[dict[str, Any]] | None:
    """Function tools, in the chat shape the engine and every adapter take."""
    if value is None:
        return None
    tools: list[dict[str, Any]] = []
    names: set[str] = set()
    for where, tool in object_items(value, "tools"):
        if tool.get("type") != "function":
            raise BadRequestError(f"{where}.type must be 'function' (hosted tools are not supported), "
                                  f"got {tool.get('type')!r}")
        function: dict[str, Any] = {"name": tool_name(tool.get("name"), TOOL_NAME, names, f"{where}.name")}
        for key, kind, label in (("description", str, "a string"), ("parameters", dict, "a JSON Schema object"),
                                 ("strict", bool, "a boolean")):
            field = optional(tool, key, kind, label, name=f"{where}.{key}")
            if field is not None:
                function[key] = field
        tools.append({"type": "function", "function": function})
    return tools or None


def _tool_choice(value: Any) -> Any:
    """The Responses tool_choice in the chat shape: a word, or `{type: function, name}`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    raise BadRequestError("tool_choice must be auto, none, required or {type: 'function', name} "
                          "(hosted tools and allowed_tools are not supported)")


def _max_output_tokens(value: Any, options: dict[str, Any]) -> int | None:
    if value is None:
        return None
    kind = PASS_THROUGH["max_completion_tokens"]  # what it is called in a chat completion
    if not kind.fits(value):
        raise BadRequestError(f"max_output_tokens must be {kind.label}")
    options["max_completion_tokens"] = value
    return int(value)


def _reasoning(body: Mapping[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`reasoning.effort` goes to the upstream as chat's reasoning_effort. A summary cannot be
    asked for: no chat upstream returns one, so promising it would be ignoring it."""
    reasoning = optional(body, "reasoning", dict, "an object", name="reasoning") or {}
    unknown = set(reasoning) - {"effort", "summary", "generate_summary"}
    if unknown:
        raise BadRequestError(f"reasoning.{sorted(unknown)[0]} is not a reasoning setting")
    effort = optional(reasoning, "effort", str, "a string", name="reasoning.effort")
    if effort is not None:
        options["reasoning_effort"] = effort
    for key in ("summary", "generate_summary"):
        if reasoning.get(key) is not None:
            raise BadRequestError(f"reasoning.{key} is not supported: reasoning summaries are not returned")
    return reasoning


def _output_schema(text: Mapping[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """`text.format` json_schema becomes the validated (and re-asked) output schema; json_object
    is only a mode switch, so it goes to the upstream as chat's response_format."""
    unknown = set(text) - {"format", "verbosity"}
    if unknown:
        raise BadRequestError(f"text.{sorted(unknown)[0]} is not a text setting")
    verbosity = optional(text, "verbosity", str, "a string", name="text.verbosity")
    if verbosity is not None:
        options["verbosity"] = verbosity
    form = text.get("format")
    if form is None:
        return None
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        options["response_format"] = {"type": "json_object"}
        return None
    if kind != "json_schema":
        raise BadRequestError("text.format.type must be text, json_schema or json_object")
    optional(form, "name", str, "a string", name="text.format.name")
    optional(form, "strict", bool, "a boolean", name="text.format.strict")
    schema = form.get("schema")
    if not isinstance(schema, dict):
        raise BadRequestError("text.format.schema must be a JSON Schema object")
    return schema


def _verbosity(options: Mapping[str, Any]) -> dict[str, Any]:
    return {"verbosity": options["verbosity"]} if "verbosity" in options else {}
