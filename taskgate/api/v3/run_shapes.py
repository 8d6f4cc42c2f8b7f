"""RunRequest -> Task and Result -> RunResponse: the whole of what makes a call "v3".

A v3 function is the same stored function v2 `/call` creates; v3 calls it a cached "script",
and in Taskgate the script is simply the function's prompt (its instructions). So a call that
omits `instructions` reuses the stored prompt, and `script_cached` says whether this call's
prompt and schemas were already the function's current revision.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from taskgate.api.body_schemas import (
    BOOLEAN,
    INTEGER,
    NON_BLANK,
    NUMBER,
    OBJECT,
    STRING,
    JsonSchema,
    array,
    nullable,
    obj,
    text,
)
from taskgate.api.guard_fields import GUARD_SCHEMA, guards_from_body
from taskgate.api.request_fields import identifier, optional
from taskgate.api.span_bodies import optional_span_id
from taskgate.api.usage_bodies import v3_usage
from taskgate.api.v3.preferences import HINTS_SCHEMA, REASONING_EFFORTS, REASONING_SUMMARY_SCHEMA, ROUTE_SCHEMA
from taskgate.api.v3.routing import JSON, Param
from taskgate.engine.models import parse_model_field
from taskgate.engine.task import DEFAULT_INSTRUCTIONS, Result, Task
from taskgate.errors import BadRequestError, TaskgateError
from taskgate.json_text import depth_over
from taskgate.providers.base import ToolCall
from taskgate.store.base import FunctionRecord

MAX_NAME_LENGTH = 256

# ---- the JSON Schemas of the bodies below; the router checks every request body against its schema

FUNCTION_NAME_SCHEMA: JsonSchema = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH,
                                    "pattern": NON_BLANK, "description": "Printable characters only"}
FUNCTION_NAME = Param("name", FUNCTION_NAME_SCHEMA, "The function's name, in printable characters; it may contain "
                                                   "`/` (send it as `%2F`)")

_MODEL_NAME: JsonSchema = text("`provider/model`, e.g. `openai/gpt-4o-mini`", pattern=NON_BLANK)
_MODEL_CHOICE: JsonSchema = obj({
    "name": _MODEL_NAME,
    "options": nullable({**OBJECT, "description": "Per-model parameters (temperature, max_tokens, ...)"}),
    "extra_headers": nullable({"type": "object", "additionalProperties": STRING,
                               "description": "Extra HTTP headers for the upstream request"}),
}, required=("name",))
_ONE_MODEL: JsonSchema = {"anyOf": [_MODEL_NAME, _MODEL_CHOICE]}
MODEL: JsonSchema = {
    "description": "a model name, an object with 'name', or a fallback list of those (tried in order)",
    "anyOf": [_MODEL_NAME, _MODEL_CHOICE, array(_ONE_MODEL)],
}
_TOOL: JsonSchema = obj({
    "name": {"type": "string", "minLength": 1},
    "description": nullable(STRING),
    "parameters": nullable({**OBJECT, "description": "The arguments' JSON Schema"}),
    "type": nullable(STRING),
}, required=("name",), title="Tool", description="A tool the model may call, in v3's flat shape")
_IGNORED = "Accepted for compatibility and ignored"
_RUN_FIELDS: dict[str, JsonSchema] = {
    "input": {"description": "The task's input: any JSON value"},
    "instructions": nullable(text("The prompt; when absent, the function's stored prompt")),
    "input_schema": nullable({**OBJECT, "description": "JSON Schema the input must match"}),
    "output_schema": nullable({**OBJECT, "description": "JSON Schema of the answer; without one the answer is text"}),
    "model": nullable(MODEL),
    "tools": nullable(array(_TOOL)),
    "parent_span_id": nullable(text("A span to record this call under, in its trace")),
    "reasoning_effort": nullable({"type": "string", "enum": list(REASONING_EFFORTS)}),
    "stream": nullable({**BOOLEAN, "description": "true answers with the event stream of the /stream operation"}),
    "reasoning_summary": REASONING_SUMMARY_SCHEMA,
    "guard": GUARD_SCHEMA,
    "route": ROUTE_SCHEMA,
    "hints": HINTS_SCHEMA,
}
RUN_REQUEST: JsonSchema = obj(_RUN_FIELDS, required=("input",), title="RunRequest")
CALL_REQUEST: JsonSchema = obj({**_RUN_FIELDS, "name": FUNCTION_NAME_SCHEMA}, required=("name", "input"),
                               title="CallRequest", description="A RunRequest that names its function")

USAGE: JsonSchema = obj({key: INTEGER for key in ("input_tokens", "output_tokens", "reasoning_tokens",
                                                  "cache_read_tokens", "cache_creation_tokens")},
                        required=("input_tokens", "output_tokens", "reasoning_tokens", "cache_read_tokens",
                                  "cache_creation_tokens"), title="Usage")
_TOOL_CALL: JsonSchema = obj({
    "id": STRING,
    "name": STRING,
    "arguments": {"description": "The arguments, parsed; as the model's text when that is not JSON"},
}, required=("id", "name", "arguments"))
_RUN_META: JsonSchema = obj({
    "function_name": STRING,
    "script_cached": {**BOOLEAN, "description": "Whether this call's prompt and schemas were already the "
                                                "function's current revision"},
    "execution_ms": INTEGER,
    "llm_calls": INTEGER,
    "tts_calls": INTEGER,
    "image_gen_calls": INTEGER,
    "generation_ms": INTEGER,
    "cost": nullable({**NUMBER, "description": "USD; null when no price is known"}),
    "usage": USAGE,
    "models_used": array(STRING),
    "tool_calls": array(_TOOL_CALL),
    "trace_uuid": STRING,
    "status": {"type": "string", "enum": ["completed"]},
    "guards": array(obj({
        "type": STRING, "direction": {"type": "string", "enum": ["input", "output"]}, "action": STRING,
        "flagged": BOOLEAN,
        "findings": array(obj({"kind": STRING, "where": text("Which text: a message's content, the answer, "
                                                              "a path in the structured answer"),
                               "start": INTEGER, "end": INTEGER}, required=("kind", "where", "start", "end"))),
    }, required=("type", "direction", "action", "flagged", "findings"),
        description="What one guard found; positions only, never the text")),
    "model_warnings": array(STRING),
}, required=("function_name", "script_cached", "execution_ms", "llm_calls", "tts_calls", "image_gen_calls",
             "generation_ms", "cost", "usage", "models_used", "tool_calls", "trace_uuid", "status", "guards",
             "model_warnings"))
RUN_RESPONSE: JsonSchema = obj({
    "data": {"description": "The answer: text, or the object that fits `output_schema`; null when the model "
                            "only called tools"},
    "meta": _RUN_META,
}, required=("data", "meta"), title="RunResponse")


def _chunk(kind: str, **fields: JsonSchema) -> JsonSchema:
    return obj({"type": {"type": "string", "const": kind}, **fields}, required=("type", *fields))


STREAM_CHUNK: JsonSchema = {"title": "StreamChunk", "oneOf": [
    _chunk("content", delta=STRING),
    _chunk("tool_call_start", tool_call_index=INTEGER, tool_call_id=STRING, tool_call_name=STRING),
    _chunk("tool_call_delta", tool_call_index=INTEGER, tool_call_args=text("A fragment of the arguments' JSON")),
    _chunk("done", usage=USAGE),
    _chunk("error", error=text("Why the stream failed after it had started")),
]}
STREAM_EVENT: JsonSchema = obj({
    "event": {"type": "string", "enum": ["message", "complete"],
              "description": "`complete` for the final RunResponse; the other events are unnamed (message)"},
    "data": {"anyOf": [
        {"type": "string", "contentMediaType": JSON, "contentSchema": {"anyOf": [STREAM_CHUNK, RUN_RESPONSE]}},
        {"type": "string", "const": "[DONE]", "description": "The last event"},
    ]},
}, required=("data",), title="StreamEvent",
    description="One server-sent event: chunks, then `event: complete` with the RunResponse, then `[DONE]`")


def function_name(value: Any, what: str = "'name'", *, error: type[TaskgateError] = BadRequestError) -> str:
    """A function's name from any dialect (a body, a path, a header): an identifier, see
    `fields.identifier`. `what` names it in the error."""
    if not isinstance(value, str):
        raise error(f"{what} is required and must be a non-empty string")
    return identifier(value, what, MAX_NAME_LENGTH, error=error)


def _tools(value: Any) -> list[dict[str, Any]] | None:
    """The flat v3 `{name, description, parameters}` tools in the OpenAI shape the engine speaks."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequestError("'tools' must be a list of {name, description, parameters} objects")
    tools = []
    for position, tool in enumerate(value):
        where = f"tools[{position}]"
        if not isinstance(tool, dict):
            raise BadRequestError(f"{where} must be an object")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequestError(f"{where}.name is required and must be a non-empty string")
        function: dict[str, Any] = {"name": name}
        description = optional(tool, "description", str, "a string", name=f"{where}.description")
        if description is not None:
            function["description"] = description
        parameters = optional(tool, "parameters", dict, "a JSON Schema object", name=f"{where}.parameters")
        if parameters is not None:
            function["parameters"] = parameters
        tools.append({"type": "function", "function": function})
    return tools or None


def task_from_run_request(body: dict[str, Any], project_id: str, name: str,
                          stored: FunctionRecord | None) -> Task:
    """Validate a RunRequest into a Task. Preferences (route, hints) are `preferences.apply_preferences`'s.

    Behind the router every body has already passed RUN_REQUEST; these checks stay so that the
    parser holds on its own, in the words its callers know."""
    if "input" not in body:
        raise BadRequestError("'input' is required")
    instructions = optional(body, "instructions", str, "a string")
    if instructions is None:
        instructions = stored.definition.instructions if stored is not None else DEFAULT_INSTRUCTIONS
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise BadRequestError(f"'reasoning_effort' must be one of {', '.join(REASONING_EFFORTS)}")
    return Task(
        project_id=project_id,
        function_name=name,
        input=body["input"],
        instructions=instructions,
        input_schema=optional(body, "input_schema", dict, "a JSON Schema object"),
        output_schema=optional(body, "output_schema", dict, "a JSON Schema object"),
        models=parse_model_field(body.get("model")),
        tools=_tools(body.get("tools")),
        parent_span_id=optional_span_id(body, "parent_span_id"),
        options={"reasoning_effort": effort} if effort is not None else {},
        record_function=True,
        guards=guards_from_body(body.get("guard")),
    )


def tool_call_body(call: ToolCall) -> dict[str, Any]:
    """A tool call with its arguments parsed; text that is not JSON (or nests too deeply to be sent
    back) is passed on as it is."""
    arguments: Any = call.arguments
    if not call.arguments:
        arguments = {}
    elif depth_over(call.arguments.encode()) is None:  # deeper could not be sent back as JSON
        with contextlib.suppress(orjson.JSONDecodeError):
            arguments = orjson.loads(call.arguments)
    return {"id": call.id, "name": call.name, "arguments": arguments}


def run_response(result: Result, task: Task) -> dict[str, Any]:
    """The RunResponse `{data, meta}` of spec §3.3."""
    if task.output_schema is not None or result.images:
        data = result.payload
    else:
        data = result.text if (result.text or not result.tool_calls) else None
    return {
        "data": data,
        "meta": {
            "function_name": task.function_name,
            "script_cached": result.script_cached,
            "execution_ms": round(result.duration_ms),
            "llm_calls": 0 if result.cached or result.images else result.attempts,
            "tts_calls": 0,
            "image_gen_calls": result.attempts if result.images and not result.cached else 0,
            "generation_ms": round(result.generation_ms),
            "cost": result.cost,
            "usage": v3_usage(result.usage),
            "models_used": [result.model] if result.model else [],
            "tool_calls": [tool_call_body(call) for call in result.tool_calls],
            "trace_uuid": result.trace_id,
            "status": "completed",
            "guards": result.guards,
            "model_warnings": [],
        },
    }
