"""The v2 dialect for `opperai==1.7.2`: `POST /v2/call` and `/v2/call/stream`, also served at the root,
and the calls of stored functions (`/v2/functions/{id}/call...`, handled in `functions.py`).

It only parses requests into a Task and shapes results and events back into v2 bodies and
StreamingChunks; everything else is the engine's. A call by name and a stored function's call
share the parsing of what both bodies hold (input, examples, tags, parent span) and all the shaping.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from taskgate.api.request_fields import optional
from taskgate.api.span_bodies import optional_span_id
from taskgate.api.usage_bodies import v2_usage
from taskgate.api.v2.json_paths import JsonPathStream, JSONStreamError
from taskgate.api.v3.run_shapes import function_name
from taskgate.context import AppContext
from taskgate.engine.functions import config_of, stored_configuration
from taskgate.engine.models import parse_model_field
from taskgate.engine.task import (
    DEFAULT_INSTRUCTIONS,
    Event,
    Example,
    Failed,
    Finished,
    Result,
    Started,
    Task,
    TaskConfig,
    TextDelta,
)
from taskgate.engine.xml_answer import XmlAnswerError, XmlAnswerReader
from taskgate.engine.xml_shapes import XML_MODE_KEY, Shape, xml_shape
from taskgate.errors import RequestValidationError, TaskgateError
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.request_io import JSONResponse, read_json_object
from taskgate.server.sse import data_frame, event_frames, sse_response
from taskgate.store.base import FunctionRecord
from taskgate.store.cache import MAX_TTL_SECONDS

_JSON_STARTS = frozenset('{["-0123456789')
MAX_FEW_SHOT_COUNT = 100  # examples shown per call: each is prompt tokens on every call of the function
# Spec §5's keys and the TaskConfig fields they set, as a function's `configuration` shows them.
CONFIGURATION_KEYS = {
    "invocation.few_shot.count": "few_shot_count",
    "invocation.structured_generation.max_attempts": "max_attempts",
    "invocation.cache.ttl": "cache_ttl",
    "beta.invocation.input_validation.enabled": "validate_input",
    XML_MODE_KEY: "xml_mode",
}


def parse_call(body: dict[str, Any], project_id: str) -> Task:
    """A v2 call body (spec §3.1) as a Task; wrong types get a 422 naming the field."""
    name = body.get("name")
    name = function_name(name.strip() if isinstance(name, str) else name, error=RequestValidationError)
    instructions = _string(body, "instructions") or DEFAULT_INSTRUCTIONS
    return Task(
        project_id=project_id,
        function_name=name,
        instructions=instructions,
        input_schema=_object(body, "input_schema"),
        output_schema=_object(body, "output_schema"),
        models=parse_model_field(body.get("model")),
        config=parse_configuration(_object(body, "configuration") or {}),
        **_call_fields(body),
    )


def parse_stored_call(body: dict[str, Any], project_id: str, function: FunctionRecord) -> Task:
    """A stored function's call body (`input?`, `parent_span_id?`, `examples?`, `tags?`) as a Task
    that runs the function as `function` shows it: its prompt, schemas, model and configuration."""
    definition = function.definition
    return Task(
        project_id=project_id,
        function_name=function.name,
        instructions=definition.instructions,
        input_schema=definition.input_schema,
        output_schema=definition.output_schema,
        models=parse_model_field(definition.model),
        config=config_of(definition),
        stored=function,
        **_call_fields(body),
    )


def _call_fields(body: dict[str, Any]) -> dict[str, Any]:
    """What both kinds of call body hold, as Task fields."""
    return {
        "input": body.get("input"),
        "examples": _examples(body.get("examples")),
        "tags": _object(body, "tags") or {},
        "parent_span_id": optional_span_id(body, "parent_span_id", error=RequestValidationError),
    }


def _string(body: dict[str, Any], key: str) -> str | None:
    return optional(body, key, str, "a string or null", error=RequestValidationError)


def _object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    return optional(body, key, dict, "an object or null", error=RequestValidationError)


def _examples(value: Any) -> list[Example]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestValidationError("'examples' must be a list of {input, output, comment?} objects")
    examples = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or "input" not in item or "output" not in item:
            raise RequestValidationError(f"examples[{index}] must be an object with 'input' and 'output'")
        comment = optional(item, "comment", str, "a string or null", name=f"examples[{index}].comment",
                           error=RequestValidationError)
        examples.append(Example(item["input"], item["output"], comment))
    return examples


def parse_configuration(config: dict[str, Any], base: TaskConfig | None = None, *,
                        function_setting: bool = False) -> TaskConfig:
    """The flat dotted keys of spec §5 over `base` (default: the defaults); unknown keys are
    accepted and ignored.

    `invocation.few_shot.count` is a function's setting, ignored on /call as in Opper, and read
    only for the function API (`function_setting`).
    """
    parsed = replace(base) if base is not None else TaskConfig()
    if not config:  # most calls send none: the defaults (or `base`) as they are, without a look-up per key
        return parsed
    ttl = config.get("invocation.cache.ttl")
    if ttl is not None:
        parsed.cache_ttl = _int_key("invocation.cache.ttl", ttl, minimum=0)
        if parsed.cache_ttl > MAX_TTL_SECONDS:
            raise RequestValidationError(f"configuration 'invocation.cache.ttl' must be at most {MAX_TTL_SECONDS} "
                                         "seconds (a year)")
    attempts = config.get("invocation.structured_generation.max_attempts")
    if attempts is not None:
        parsed.max_attempts = _int_key("invocation.structured_generation.max_attempts", attempts, minimum=1)
    validate = config.get("beta.invocation.input_validation.enabled")
    if validate is not None:
        parsed.validate_input = _bool_key("beta.invocation.input_validation.enabled", validate)
    xml_mode = config.get(XML_MODE_KEY)
    if xml_mode is not None:
        parsed.xml_mode = _bool_key(XML_MODE_KEY, xml_mode)
    if function_setting:
        count = config.get("invocation.few_shot.count")
        if count is not None:
            parsed.few_shot_count = _int_key("invocation.few_shot.count", count, minimum=0)
            if parsed.few_shot_count > MAX_FEW_SHOT_COUNT:
                raise RequestValidationError(f"configuration 'invocation.few_shot.count' must be at most "
                                             f"{MAX_FEW_SHOT_COUNT}")
    return parsed


def configuration_body(config: TaskConfig) -> dict[str, Any]:
    """A function's settings as the dotted keys of spec §5 (FunctionCallConfigurationOutput)."""
    values = stored_configuration(config)
    return {key: values.get(name, False) for key, name in CONFIGURATION_KEYS.items()}


def _bool_key(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RequestValidationError(f"configuration '{key}' must be a boolean")
    return value


def _int_key(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RequestValidationError(f"configuration '{key}' must be an integer of at least {minimum}")
    return value


def call_body(result: Result) -> dict[str, Any]:
    """The v2 call response (spec §3.1)."""
    return {
        "span_id": result.span_id,
        "message": result.text if result.payload is None else None,
        "json_payload": None if result.images else result.payload,
        "cached": result.cached,
        "images": [image.b64 if image.b64 is not None else image.url for image in result.images] or None,
        "usage": v2_usage(result.usage),
        "cost": None
        if result.cost is None
        else {"generation": result.cost, "platform": 0.0, "total": result.cost},
    }


def error_chunk(error: Exception) -> dict[str, Any]:
    if isinstance(error, TaskgateError):
        return {"chunk_type": "error", "error_type": error.type_name, "error_message": error.detail}
    return {"chunk_type": "error", "error_type": "InternalServerError", "error_message": "internal error"}


def v2_frames(first: Event, events: AsyncGenerator[Event, None], structured: bool,
              text_deltas: bool = False, xml: Shape | None = None) -> AsyncGenerator[bytes, None]:
    """StreamingChunks: the span id first, then text or json_path deltas, or an error chunk last.

    The span id rides with the first frames: the engine starts only once the upstream has output,
    but in structured mode the first pieces of JSON (`{"ti`) may not make a delta yet.
    `text_deltas`: every delta a string (see `FieldStream`); `xml`: the answer is XML of this shape.
    """
    head = [data_frame({"span_id": first.span_id})] if isinstance(first, Started) else []
    return event_frames(events, ChunkFrames(structured, text_deltas, xml), head)


class ChunkFrames:
    """The StreamingChunks of one stream: text deltas, or with an output schema `json_path` deltas."""

    def __init__(self, structured: bool, text_deltas: bool = False, xml: Shape | None = None) -> None:
        self._fields = FieldStream(text_deltas, xml) if structured else None

    def frames(self, event: Event) -> list[bytes]:
        if isinstance(event, TextDelta):
            if self._fields is None:
                return [data_frame({"delta": event.text, "chunk_type": "text"})]
            return self._fields.feed(event.text)
        if isinstance(event, Finished):
            return self._fields.finish(event.result.payload) if self._fields is not None else []
        if isinstance(event, Failed):
            return [data_frame(error_chunk(event.error))]
        return []  # v2 has no chunk for tool calls

    def ended(self) -> list[bytes]:
        return []


class FieldStream:
    """Structured mode: JSON text in (in XML mode XML, read by `XmlAnswerReader`), `json_path`
    chunks out (scalars only; the SDK drops containers).

    A delta is the scalar itself (a number stays a number), as `/call/stream` sends it. A stored
    function's stream is typed `delta: str` in 1.7.2, which refuses a number: with `text_deltas`
    a number, boolean or null goes as its JSON text.
    """

    def __init__(self, text_deltas: bool = False, xml: Shape | None = None) -> None:
        self._text_deltas = text_deltas
        self._parser: JsonPathStream | XmlAnswerReader | None = (
            JsonPathStream() if xml is None else XmlAnswerReader(xml))
        # a prompted model may open with a code fence before the JSON; the XML reader skips its own
        self._in_preamble = xml is None
        self._emitted = False

    def feed(self, text: str) -> list[bytes]:
        if self._parser is None or self._parser.done:
            return []
        if self._in_preamble:
            start = next((i for i, ch in enumerate(text) if ch in _JSON_STARTS), None)
            if start is None:
                return []
            text, self._in_preamble = text[start:], False
        try:
            return self._frames(self._parser.feed(text))
        except (JSONStreamError, XmlAnswerError):
            self._parser = None  # stop emitting; the engine's final schema check decides the outcome
            return []

    def finish(self, payload: Any) -> list[bytes]:
        frames: list[bytes] = []
        if self._parser is not None and not self._parser.done:
            with contextlib.suppress(JSONStreamError, XmlAnswerError):
                frames = self._frames(self._parser.finish())
        if not self._emitted and not isinstance(payload, dict | list):
            frames.append(self._frame("response", payload))
        return frames

    def _frames(self, fragments: list[tuple[str, Any]]) -> list[bytes]:
        frames = [self._frame(path, delta) for path, delta in fragments if not isinstance(delta, dict | list)]
        self._emitted = self._emitted or bool(frames)
        return frames

    def _frame(self, path: str, delta: Any) -> bytes:
        if self._text_deltas and not isinstance(delta, str):
            delta = orjson.dumps(delta).decode()
        return data_frame({"delta": delta, "json_path": path, "chunk_type": "json"})


async def answer(ctx: AppContext, request: Request, task: Task) -> Response:
    """The v2 call response of running `task`."""
    return JSONResponse(call_body(await until_client_leaves(request, ctx.engine.run(task))))


async def answer_stream(ctx: AppContext, request: Request, task: Task, *, text_deltas: bool = False) -> Response:
    """The v2 event stream of `task`; errors before any output are plain HTTP errors."""
    events = ctx.engine.stream(task)
    first = await until_client_leaves(request, anext(events))
    xml = xml_shape(task.output_schema) if task.config.xml_mode else None  # the engine has checked it
    return sse_response(v2_frames(first, events, task.output_schema is not None, text_deltas, xml),
                        ctx.settings.heartbeat_s)


async def call(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    return await answer(ctx, request, parse_call(await read_json_object(request, ctx.settings.max_body_bytes),
                                                 project_id))


async def stream(ctx: AppContext, request: Request) -> Response:
    project_id = await ctx.auth.project_for(request)
    return await answer_stream(ctx, request, parse_call(await read_json_object(request, ctx.settings.max_body_bytes),
                                                        project_id))
