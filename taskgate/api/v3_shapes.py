"""RunRequest -> Task and Result -> RunResponse: the whole of what makes a call "v3".

A v3 function is the same stored function v2 `/call` creates; v3 calls it a cached "script",
and in Taskgate the script is simply the function's prompt (its instructions). So a call that
omits `instructions` reuses the stored prompt, and `script_cached` says whether this call's
prompt and schemas were already the function's current revision.
"""

from __future__ import annotations

from typing import Any

import orjson

from taskgate.api.fields import optional
from taskgate.api.spans_common import optional_span_id
from taskgate.engine.models import parse_model_field
from taskgate.engine.task import DEFAULT_INSTRUCTIONS, Result, Task
from taskgate.errors import BadRequestError
from taskgate.providers.base import ToolCall, Usage
from taskgate.store.base import FunctionRecord

REASONING_EFFORTS = ("low", "medium", "high")
MAX_NAME_LENGTH = 256


def function_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError("'name' is required and must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise BadRequestError(f"'name' must be at most {MAX_NAME_LENGTH} characters")
    return value


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
    """Validate a RunRequest into a Task. Unknown fields (guard, route, hints...) are accepted."""
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
    )


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_creation_tokens": usage.cache_write_tokens,
    }


def tool_call_body(call: ToolCall) -> dict[str, Any]:
    """A tool call with its arguments parsed; text that is not JSON is passed on as it is."""
    try:
        arguments: Any = orjson.loads(call.arguments) if call.arguments else {}
    except orjson.JSONDecodeError:
        arguments = call.arguments
    return {"id": call.id, "name": call.name, "arguments": arguments}


def run_response(result: Result, task: Task) -> dict[str, Any]:
    """The RunResponse `{data, meta}` of spec §3.3."""
    if task.output_schema is not None:
        data = result.payload
    else:
        data = result.text if (result.text or not result.tool_calls) else None
    return {
        "data": data,
        "meta": {
            "function_name": task.function_name,
            "script_cached": result.script_cached,
            "execution_ms": round(result.duration_ms),
            "llm_calls": 0 if result.cached else result.attempts,
            "tts_calls": 0,
            "image_gen_calls": 0,
            "generation_ms": round(result.generation_ms),
            "cost": result.cost,
            "usage": usage_body(result.usage),
            "models_used": [result.model] if result.model else [],
            "tool_calls": [tool_call_body(call) for call in result.tool_calls],
            "trace_uuid": result.trace_id,
            "status": "completed",
            "guards": [],
            "model_warnings": [],
        },
    }
