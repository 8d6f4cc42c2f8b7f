"""The task engine: one dialect-free path for every call.

validate → look up the cache → build the prompt → generate (with fallback and schema re-asks)
→ record the span. `run()` and `stream()` share every step but the generation itself, so the
two paths cannot drift apart; `run()` uses the provider's non-streaming call because that is
measurably cheaper than collecting a stream.

Every call that gets past its preparation is recorded exactly once, as ok, error, or cancelled
(the client left, or the server stopped), whatever point the cancellation reaches.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs

from taskgate.engine.cache import ResultCache
from taskgate.engine.cost import PriceBook
from taskgate.engine.embeddings import Embedder, EmbeddingResult, EmbeddingTask
from taskgate.engine.examples import ExampleService
from taskgate.engine.functions import FunctionService
from taskgate.engine.limits import Budget, CallLimits
from taskgate.engine.prompt import build_messages, reask_message, render_value
from taskgate.engine.router import Outcome, RequestBuilder, Route, Router
from taskgate.engine.schemas import CompiledSchema, canonical, compile_schema, validation_errors
from taskgate.engine.spans import SpanService
from taskgate.engine.structured import check_answer
from taskgate.engine.task import (
    Event,
    Failed,
    Finished,
    ModelChoice,
    Result,
    Started,
    Task,
    TextDelta,
    ToolCallDelta,
)
from taskgate.errors import (
    InputValidationError,
    StreamCancelledError,
    StructuredGenerationError,
    TaskgateError,
)
from taskgate.ids import new_id
from taskgate.providers.base import ChatRequest, ChatResponse, StructuredOutput, ToolCall, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.store.base import SpanRecord, Store
from taskgate.telemetry.recorder import SpanRecorder


@dataclass(slots=True)
class Call:
    """Everything `_prepare` works out once, before any generation."""

    task: Task
    span_id: str
    trace_id: str
    started_at: datetime
    clock: float
    routes: list[Route]
    messages: list[dict[str, Any]]
    validator: jsonschema_rs.Draft202012Validator | None
    structured: StructuredOutput | None
    cache_key: str | None
    max_attempts: int
    usage: Usage
    budget: Budget
    script_cached: bool = False
    cost: float | None = 0.0
    attempts: int = 0
    models_failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    last_model: str | None = None
    last_output: Any = None
    recorded: bool = False


class Engine:
    def __init__(self, store: Store, recorder: SpanRecorder, registry: ProviderRegistry, default_model: str,
                 limits: CallLimits | None = None) -> None:
        self._store = store
        self._recorder = recorder
        self._limits = limits or CallLimits()
        self._router = Router(registry, default_model)
        self.providers = registry  # what can be routed to, for the model listing
        self._prices = PriceBook()
        self._cache = ResultCache(store)
        self.functions = FunctionService(store)
        self.examples = ExampleService(store)
        self.spans = SpanService(store, recorder)
        self._embedder = Embedder(registry, self._prices, self.spans)

    # ------------------------------------------------------------------ public

    async def run(self, task: Task) -> Result:
        call = await self._prepare(task)
        try:
            cached = await self._cache.get(call)
            if cached is not None:
                return self._finish(call, cached)
            try:
                response, outcome, payload = await self._generate(call)
            except TaskgateError as exc:
                self._record(call, call.last_model, error=exc, output=call.last_output)
                raise
            result = self._result(call, response, outcome, payload)
            await self._cache.put(call, result)
            return self._finish(call, result)
        except asyncio.CancelledError:
            self._record_cancelled(call)
            raise

    async def stream(self, task: Task) -> AsyncGenerator[Event, None]:
        """Started, deltas, then Finished or Failed; errors before Started are raised instead.

        The consumer may stop at any event (the client left): the span is still recorded once, and
        the upstream stream is closed.
        """
        call = await self._prepare(task)
        try:
            cached = await self._cache.get(call)
            if cached is not None:
                result = self._finish(call, cached)  # recorded before the first yield, which may be the last
                yield Started(call.span_id, call.trace_id)
                replay = cached.text if cached.payload is None else render_value(cached.payload)
                if replay:
                    yield TextDelta(replay)
                yield Finished(result)
                return
            request = self._request_builder(call, call.messages)
            try:
                chunks, outcome = await self._router.open_stream(call.routes, request, call.budget)
            except TaskgateError as exc:
                self._record(call, None, error=exc)
                raise
            call.attempts = 1
            call.models_failed = outcome.failed
            call.last_model = outcome.route.choice.name
            response = ChatResponse(text="")
            text: list[str] = []
            tools: dict[int, ToolCall] = {}
            try:
                yield Started(call.span_id, call.trace_id)  # inside the try: stopping here also closes `chunks`
                async for chunk in chunks:
                    if chunk.text:
                        text.append(chunk.text)
                        yield TextDelta(chunk.text)
                    if chunk.tool_index is not None:
                        tool = tools.setdefault(chunk.tool_index, ToolCall(id="", name="", arguments=""))
                        tool.id = chunk.tool_id or tool.id
                        tool.name = chunk.tool_name or tool.name
                        tool.arguments += chunk.tool_arguments
                        yield ToolCallDelta(chunk.tool_index, chunk.tool_id, chunk.tool_name, chunk.tool_arguments)
                    if chunk.finish_reason:
                        response.finish_reason = chunk.finish_reason
                    if chunk.usage is not None:
                        response.usage.add(chunk.usage)
                    call.notes.extend(chunk.notes)
            except TaskgateError as exc:
                self._charge(call, outcome.route, response.usage)
                self._record(call, outcome.route.choice.name, error=exc, output="".join(text))
                yield Failed(exc)
                return
            except (asyncio.CancelledError, GeneratorExit):
                self._charge(call, outcome.route, response.usage)
                call.last_output = "".join(text)
                raise
            finally:
                await chunks.aclose()
            response.text = "".join(text)
            response.tool_calls = [tools[i] for i in sorted(tools)]
            self._charge(call, outcome.route, response.usage)
            payload = None
            if self._expects_json(call, response):
                payload, errors = check_answer(response.text, call.validator)  # type: ignore[arg-type]
                if errors:
                    error = StructuredGenerationError(
                        "the streamed answer does not match output_schema: " + "; ".join(errors),
                        details={"errors": errors},
                    )
                    self._record(call, outcome.route.choice.name, error=error, output=response.text)
                    yield Failed(error)
                    return
            result = self._result(call, response, outcome, payload)
            await self._cache.put(call, result)
            yield Finished(self._finish(call, result))
        except (asyncio.CancelledError, GeneratorExit):
            self._record_cancelled(call)
            raise

    async def embed(self, task: EmbeddingTask) -> EmbeddingResult:
        """Embeddings, priced and recorded like a call (see `taskgate.engine.embeddings`)."""
        return await self._embedder.embed(task)

    # ------------------------------------------------------------------ preparation

    async def _prepare(self, task: Task) -> Call:
        max_attempts = self._limits.attempts(task.config.max_attempts)  # first: a refused call stores nothing
        clock = time.perf_counter()
        started_at = datetime.now(UTC)
        output = compile_schema(task.output_schema, "output_schema") if task.output_schema is not None else None
        if task.input_schema is not None:
            input_schema = compile_schema(task.input_schema, "input_schema")
            if task.config.validate_input:
                errors = validation_errors(input_schema.validator, task.input)
                if errors:
                    raise InputValidationError("input does not match input_schema: " + "; ".join(errors))
        _check_tool_schemas(task.tools)
        routes = self._router.resolve(task.models)
        trace_id = await self.spans.trace_for(task.project_id, task.parent_span_id)
        examples = list(task.examples)
        script_cached = False
        if task.record_function:
            function, script_cached = await self.functions.ensure(task)
            if function.few_shot_count > 0:
                examples += await self.examples.select(
                    task.project_id, function.id, task.input, function.few_shot_count
                )
        messages = build_messages(task, examples)
        usage = Usage()
        call = Call(
            task=task,
            span_id=new_id(),
            trace_id=trace_id,
            started_at=started_at,
            clock=clock,
            routes=routes,
            messages=messages,
            validator=output.validator if output is not None else None,
            structured=_structured(task.output_schema, output),
            cache_key=_cache_key(task, messages, routes) if task.config.cache_ttl > 0 else None,
            max_attempts=max_attempts,
            usage=usage,
            budget=Budget(self._limits, usage),
            script_cached=script_cached,
        )
        return call

    # ------------------------------------------------------------------ generation

    def _request_builder(self, call: Call, messages: list[dict[str, Any]]) -> RequestBuilder:
        """Per chain entry: the call's request, with that model's options over the task's."""
        task = call.task

        def build(choice: ModelChoice, model: str) -> ChatRequest:
            options = {**task.options, **choice.options} if choice.options else task.options
            return ChatRequest(
                model=model,
                messages=messages,
                tools=task.tools,
                tool_choice=task.tool_choice,
                structured=call.structured,
                options=dict(options),
                extra_headers=choice.extra_headers,
            )

        return build

    async def _generate(self, call: Call) -> tuple[ChatResponse, Outcome, Any]:
        """Generate until the answer fits the schema, showing the model its errors on each retry."""
        max_attempts = call.max_attempts if call.validator is not None else 1
        messages = list(call.messages)
        routes = call.routes
        while True:
            response, outcome = await self._router.complete(routes, self._request_builder(call, messages), call.budget)
            routes = routes[routes.index(outcome.route):]  # a re-ask goes to the model that answered, not a failed one
            call.attempts += 1
            call.models_failed.extend(outcome.failed)
            call.last_model, call.last_output = outcome.route.choice.name, response.text
            call.notes.extend(response.notes)
            self._charge(call, outcome.route, response.usage)
            if not self._expects_json(call, response):
                return response, outcome, None
            payload, errors = check_answer(response.text, call.validator)  # type: ignore[arg-type]
            if not errors:
                return response, outcome, payload
            if call.attempts >= max_attempts:
                raise StructuredGenerationError(
                    f"no answer matched output_schema after {call.attempts} attempts; last errors: "
                    + "; ".join(errors),
                    details={"errors": errors},
                )
            messages += [{"role": "assistant", "content": response.text}, reask_message(errors)]

    @staticmethod
    def _expects_json(call: Call, response: ChatResponse) -> bool:
        """With a schema the answer must be JSON, unless the model chose to call the caller's tools."""
        return call.validator is not None and not (response.tool_calls and call.task.tools)

    def _charge(self, call: Call, route: Route, usage: Usage) -> None:
        call.usage.add(usage)
        if route.provider == "local":
            return
        cost = self._prices.cost(self._router.price_provider(route.provider), route.model, usage)
        call.cost = None if cost is None or call.cost is None else call.cost + cost

    # ------------------------------------------------------------------ results and recording

    def _result(self, call: Call, response: ChatResponse, outcome: Outcome, payload: Any) -> Result:
        return Result(
            span_id=call.span_id,
            trace_id=call.trace_id,
            text=None if self._expects_json(call, response) else response.text,
            payload=payload,
            tool_calls=response.tool_calls,
            finish_reason=response.finish_reason,
            usage=call.usage,
            cost=call.cost,
            model=outcome.route.choice.name,
            models_failed=call.models_failed,
            attempts=call.attempts,
            script_cached=call.script_cached,
            generation_ms=(time.perf_counter() - call.clock) * 1000,
        )

    def _finish(self, call: Call, result: Result) -> Result:
        result.span_id, result.trace_id = call.span_id, call.trace_id
        result.script_cached = call.script_cached
        result.duration_ms = (time.perf_counter() - call.clock) * 1000
        self._record(call, result.model, result=result)
        return result

    def _record_cancelled(self, call: Call) -> None:
        """The call stopped because its task was cancelled: record it as such, unless it already was."""
        if not call.recorded:
            self._record(call, call.last_model, error=StreamCancelledError(), output=call.last_output,
                         status="cancelled")

    def _record(
        self,
        call: Call,
        model: str | None,
        *,
        result: Result | None = None,
        error: TaskgateError | None = None,
        output: Any = None,
        status: str | None = None,
    ) -> None:
        task = call.task
        if result is not None:
            output = result.payload if result.payload is not None else result.text
        meta: dict[str, Any] = {"script_cached": call.script_cached}
        if result is not None:
            meta.update(cached=result.cached, finish_reason=result.finish_reason)
            if result.tool_calls:
                meta["tool_calls"] = [asdict(t) for t in result.tool_calls]
        if call.notes:
            meta["notes"] = call.notes
        call.recorded = True
        self._recorder.record(
            SpanRecord(
                id=call.span_id,
                trace_id=call.trace_id,
                project_id=task.project_id,
                name=task.function_name,
                type=task.span_type,
                parent_id=task.parent_span_id,
                start_time=call.started_at,
                end_time=datetime.now(UTC),
                input=task.input if task.messages is None else {"messages": task.messages},
                output=output,
                error=error.detail if error is not None else None,
                status=status or ("error" if error is not None else "ok"),
                model_chain=[r.choice.name for r in call.routes],
                model_used=model,
                models_failed=list(call.models_failed),
                attempts=call.attempts,
                usage=_usage_dict(call.usage),
                cost=call.cost,
                tags=dict(task.tags),
                meta=meta,
                function_name=task.function_name if task.record_function else None,
            )
        )


def _structured(schema: dict[str, Any] | None, compiled: CompiledSchema | None) -> StructuredOutput | None:
    """Native structured output, strict when the schema fits OpenAI's strict subset."""
    if schema is None or compiled is None:
        return None
    strict = compiled.strict_variant()
    return StructuredOutput(schema=strict, strict=True) if strict is not None else StructuredOutput(schema=schema)


def _check_tool_schemas(tools: list[dict[str, Any]] | None) -> None:
    """Tool parameters go upstream as they are, but are held to the same rules as every schema:
    self-contained and bounded (a 400 naming the tool otherwise). Cached like the others."""
    for index, tool in enumerate(tools or ()):
        function = tool.get("function")
        parameters = function.get("parameters") if isinstance(function, dict) else None
        if parameters is not None:
            compile_schema(parameters, f"tools[{index}] parameters")


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


def _cache_key(task: Task, messages: list[dict[str, Any]], routes: list[Route]) -> str:
    """Project, function, effective prompt, schemas, input, tools and model chain."""
    material = canonical(
        [
            task.project_id,
            task.function_name,
            messages,
            task.input_schema,
            task.output_schema,
            task.input,
            task.tools,
            task.tool_choice,
            task.options,
            [[r.choice.name, r.choice.options] for r in routes],
        ]
    )
    return hashlib.sha256(material).hexdigest()


