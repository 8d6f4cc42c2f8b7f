"""The dialect-free task: what every HTTP dialect parses its request into, and what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskgate.providers.base import Adapter, GeneratedImage, ToolCall, Usage
from taskgate.store.base import FunctionRecord

if TYPE_CHECKING:
    from taskgate.engine.guards.spec import Guards

DEFAULT_INSTRUCTIONS = "You are a helpful assistant"
DEFAULT_MAX_ATTEMPTS = 5  # the spec's default; the operator's TASKGATE_MAX_ATTEMPTS may lower it


@dataclass(frozen=True, slots=True)
class CustomTarget:
    """Where a project's custom model is served: its own adapter, asked for model `identifier`.
    `version` changes whenever the model does, so results cached for the old one are not served."""

    adapter: Adapter
    identifier: str
    version: str


@dataclass(slots=True)
class ModelChoice:
    """One entry of a model chain: `provider/model` (or a project's custom model or alias, by
    name) plus per-model options and upstream headers. `custom` is set by name resolution
    (engine/model_names.py), never by a parser."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    extra_headers: dict[str, str] = field(default_factory=dict)
    custom: CustomTarget | None = None


@dataclass(slots=True)
class Example:
    input: Any
    output: Any
    comment: str | None = None


@dataclass(slots=True)
class TaskConfig:
    """The v2 `configuration` keys that change behaviour (spec §5)."""

    cache_ttl: int = 0
    max_attempts: int | None = None  # None: the server's default (see CallLimits.attempts)
    few_shot_count: int = 3
    validate_input: bool = False
    xml_mode: bool = False  # the model answers in XML shaped by the output schema (engine/xml_shapes.py)


@dataclass(slots=True)
class Task:
    project_id: str
    function_name: str
    input: Any = None
    instructions: str = DEFAULT_INSTRUCTIONS
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    models: list[ModelChoice] = field(default_factory=list)  # empty: the server default
    examples: list[Example] = field(default_factory=list)
    config: TaskConfig = field(default_factory=TaskConfig)
    tags: dict[str, Any] = field(default_factory=dict)
    parent_span_id: str | None = None
    # Chat mode (compat and v3 tools): the caller's own conversation, sent as is after the prompt.
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI shape
    tool_choice: Any = None
    options: dict[str, Any] = field(default_factory=dict)  # request-level options, under model options
    span_type: str = "call"
    record_function: bool = True  # False for compat chats: they are not stored functions
    # A stored function called as it is stored (v2 `/functions/{id}/call[/{revision_id}]`), at the
    # revision it shows: its definition is not written again, and its few-shot count is this one's.
    stored: FunctionRecord | None = None
    # Streaming with an output schema: keep the answer text back until it validates, so that a misfit
    # is asked again as `run` asks it; the dialect then sends the validated answer whole.
    hold_structured_text: bool = False
    guards: Guards | None = None  # None: no guard asked, and none runs


@dataclass(slots=True)
class Result:
    span_id: str
    trace_id: str
    text: str | None  # the answer when there is no output schema
    payload: Any = None  # the validated object when there is one
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    stop_sequence: str | None = None  # the stop sequence the answer ended on, when the upstream said which
    logprobs: list[dict[str, Any]] | None = None  # per-token, when asked for and the upstream gave them
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None  # USD; None when no price is known
    model: str = ""  # `provider/model` that answered
    models_failed: list[str] = field(default_factory=list)
    attempts: int = 1
    cached: bool = False
    script_cached: bool = False  # the function's current revision existed before this call (v3 meta)
    duration_ms: float = 0.0
    generation_ms: float = 0.0
    guards: list[dict[str, Any]] = field(default_factory=list)  # one report per guard rule (CallGuard.reports)
    images: list[GeneratedImage] = field(default_factory=list)  # an image model's images (payload shows them)


# ---- stream events, emitted by Engine.stream() in this order: Started, deltas..., Finished | Failed


@dataclass(slots=True)
class Started:
    span_id: str
    trace_id: str
    guards: list[dict[str, Any]] = field(default_factory=list)  # what the input guards found


@dataclass(slots=True)
class TextDelta:
    """A fragment of the answer text; with an output schema, a fragment of its JSON text."""

    text: str
    logprobs: list[dict[str, Any]] | None = None  # the fragment's per-token log probabilities, when asked for


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(slots=True)
class Finished:
    result: Result


@dataclass(slots=True)
class Failed:
    """The call failed after Started; failures before it are raised by `Engine.stream()` instead."""

    error: Exception


Event = Started | TextDelta | ToolCallDelta | Finished | Failed


@dataclass(slots=True)
class ChoiceEvent:
    """One choice's event in a stream of several answers to one task (OpenAI's `n`)."""

    index: int
    event: Event
