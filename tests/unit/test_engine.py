"""The engine's rules, one test each: this file is their specification.

The engine is built as `taskgate serve` builds it (a SQLite store, the span recorder, the provider
registry), but its providers are in-memory `ScriptedAdapter`s, so every answer, failure and stream
piece is given in advance and every request the engine made can be read back:

- `openai/gpt-4o-mini` goes to `rig.primary`, registered as "openai": its cost is priced from genai-prices;
- `backup/model-b` goes to `rig.backup`, a provider the price table does not know: its cost is None.

`Engine.run(task)` collects a result; `Engine.stream(task)` yields Started, deltas, then Finished or
Failed.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import genai_prices
import pytest
import sqlalchemy as sa

from taskgate.config import Settings
from taskgate.engine.engine import Engine
from taskgate.engine.functions import definition_of
from taskgate.engine.limits import CallLimits
from taskgate.engine.spans import REVISION_KEY
from taskgate.engine.task import (
    Event,
    Example,
    Failed,
    Finished,
    ModelChoice,
    Result,
    Started,
    Task,
    TaskConfig,
    TextDelta,
    ToolCallDelta,
)
from taskgate.errors import (
    BadRequestError,
    CallBudgetExceededError,
    InputValidationError,
    ModelRejectedError,
    NotFoundError,
    ProviderError,
    ProviderNotConfiguredError,
    RequestValidationError,
    SchemaError,
    StreamCancelledError,
    StructuredGenerationError,
    TaskgateError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    classify_upstream_status,
)
from taskgate.providers.base import ChatChunk, ChatRequest, ChatResponse, ToolCall, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.scripted import ScriptedAdapter
from taskgate.store import SqlStore, open_store
from taskgate.store.base import ExampleRecord, SpanRecord
from taskgate.store.tables import cache_entries
from taskgate.telemetry import SpanRecorder

pytestmark = pytest.mark.asyncio(loop_scope="session")

PRIMARY = "openai/gpt-4o-mini"  # the server's default model in these tests
BACKUP = "backup/model-b"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}
ADA = '{"name": "Ada"}'
NOT_A_PERSON = '{"name": 1}'
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
OUTSIDE_REF = {"$ref": "https://example.com/person.json"}


# ---------------------------------------------------------------- the rig


class KeptSpans(SpanRecorder):
    """A span recorder that also keeps every span handed to it, to count how often a call is recorded."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store)
        self.recorded: list[SpanRecord] = []

    def record(self, span: SpanRecord) -> bool:
        self.recorded.append(span)
        return super().record(span)


@dataclass(slots=True)
class Rig:
    store: SqlStore
    recorder: KeptSpans
    registry: ProviderRegistry
    primary: ScriptedAdapter
    backup: ScriptedAdapter
    project: str
    engine: Engine

    def limited(self, **limits: int) -> Engine:
        """An engine over the same store, recorder and adapters, under other operator limits."""
        return Engine(self.store, self.recorder, self.registry, PRIMARY, CallLimits(**limits))

    def task(self, **fields: Any) -> Task:
        return Task(**{"project_id": self.project, "function_name": "spec", "input": "hello", **fields})

    async def span(self, span_id: str) -> SpanRecord:
        """The span as stored, once everything recorded so far is written."""
        await self.recorder.flush()
        span = await self.store.get_span(self.project, span_id)
        assert span is not None
        return span

    async def only_span(self) -> SpanRecord:
        """The one span the test's call recorded (a second record of it would be a bug)."""
        assert len(self.recorder.recorded) == 1, [s.status for s in self.recorder.recorded]
        return await self.span(self.recorder.recorded[0].id)


@pytest.fixture(scope="module")
async def engine_store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SqlStore]:
    """One SQLite file for the module (migrating one costs ~70 ms); each test has its own project."""
    opened = await open_store(f"sqlite:///{tmp_path_factory.mktemp('engine') / 'taskgate.db'}")
    assert isinstance(opened, SqlStore)
    yield opened
    await opened.close()


@pytest.fixture
async def rig(engine_store: SqlStore) -> AsyncIterator[Rig]:
    primary, backup = ScriptedAdapter(), ScriptedAdapter()
    registry = ProviderRegistry(Settings.from_env({}), adapters={"openai": primary, "backup": backup})
    recorder = KeptSpans(engine_store)
    project = await engine_store.ensure_project(f"spec-{uuid.uuid4().hex}")
    engine = Engine(engine_store, recorder, registry, PRIMARY)
    yield Rig(engine_store, recorder, registry, primary, backup, project, engine)
    await recorder.close()


def answer(text: str, input_tokens: int = 10, output_tokens: int = 5, **fields: Any) -> ChatResponse:
    return ChatResponse(text=text, usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens), **fields)


def chain(*names: str) -> list[ModelChoice]:
    return [ModelChoice(name) for name in names]


async def events_of(stream: AsyncIterable[Event]) -> list[Event]:
    return [event async for event in stream]


def finished(events: list[Event]) -> Result:
    assert isinstance(events[-1], Finished), events
    return events[-1].result


def failed(events: list[Event]) -> Exception:
    assert isinstance(events[-1], Failed), events
    return events[-1].error


def shown(events: list[Event]) -> str:
    """The text a client of the stream saw."""
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def tool_deltas(events: list[Event]) -> list[ToolCallDelta]:
    return [event for event in events if isinstance(event, ToolCallDelta)]


def demonstrations(request: ChatRequest) -> list[Any]:
    """The example inputs shown to the model as turns between the system prompt and the input."""
    return [message["content"] for message in request.messages[1:-1] if message["role"] == "user"]


def list_price(usage: Usage) -> float:
    """What genai-prices says `usage` on gpt-4o-mini costs."""
    priced = genai_prices.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                                cache_read_tokens=usage.cache_read_tokens or None)
    return float(genai_prices.calc_price(priced, model_ref="gpt-4o-mini", provider_id="openai").total_price)


async def until(condition: Callable[[], object]) -> None:
    """Let the engine run until `condition` holds; the bound only guards against a hang."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


# ---------------------------------------------------------------- what the model is asked


async def test_the_prompt_is_the_instructions_and_output_schema_then_the_input(rig: Rig) -> None:
    rig.primary.add(answer(ADA))
    await rig.engine.run(rig.task(instructions="Extract the person.", input={"text": "Ada wrote"},
                                  output_schema=PERSON))
    system, user = rig.primary.requests[0].messages
    assert system["role"] == "system" and system["content"].startswith("Extract the person.")
    assert '"required":["name"]' in system["content"]  # the schema, as compact JSON
    assert user == {"role": "user", "content": '{"text":"Ada wrote"}'}


async def test_an_output_schema_asks_the_adapter_for_native_structured_output(rig: Rig) -> None:
    rig.primary.add(answer("hi"), answer(ADA))
    await rig.engine.run(rig.task())
    await rig.engine.run(rig.task(output_schema=PERSON))
    assert [request.structured is not None for request in rig.primary.requests] == [False, True]


async def test_a_task_without_models_goes_to_the_servers_default_model(rig: Rig) -> None:
    rig.primary.add(answer("hi"))
    result = await rig.engine.run(rig.task())
    assert (result.text, result.model) == ("hi", PRIMARY)
    assert rig.primary.requests[0].model == "gpt-4o-mini"  # the provider's own id, without "openai/"


async def test_a_chain_entrys_options_and_headers_go_to_that_model_only(rig: Rig) -> None:
    rig.primary.add(ProviderError("down"))
    rig.backup.add(answer("hi"))
    models = [ModelChoice(PRIMARY, options={"temperature": 0}, extra_headers={"x-team": "a"}), ModelChoice(BACKUP)]
    await rig.engine.run(rig.task(models=models, options={"temperature": 1, "max_tokens": 50}))
    first, second = rig.primary.requests[0], rig.backup.requests[0]
    assert (first.options, first.extra_headers) == ({"temperature": 0, "max_tokens": 50}, {"x-team": "a"})
    assert (second.options, second.extra_headers) == ({"temperature": 1, "max_tokens": 50}, {})


# ---------------------------------------------------------------- structured output: re-ask with errors


async def test_an_answer_that_fits_the_output_schema_is_returned_as_payload(rig: Rig) -> None:
    rig.primary.add(answer(ADA))
    result = await rig.engine.run(rig.task(output_schema=PERSON))
    assert (result.payload, result.text, result.attempts) == ({"name": "Ada"}, None, 1)


async def test_an_answer_in_a_code_fence_or_a_sentence_is_read_as_its_json(rig: Rig) -> None:
    rig.primary.add(answer(f"```json\n{ADA}\n```"), answer(f"Here it is: {ADA}. Anything else?"))
    fenced = await rig.engine.run(rig.task(output_schema=PERSON))
    worded = await rig.engine.run(rig.task(output_schema=PERSON))
    assert fenced.payload == worded.payload == {"name": "Ada"}
    assert len(rig.primary.requests) == 2


async def test_an_answer_that_misses_the_schema_is_asked_again_showing_the_model_its_errors(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON), answer(ADA))
    result = await rig.engine.run(rig.task(output_schema=PERSON))
    assert (result.payload, result.attempts) == ({"name": "Ada"}, 2)
    first, again = rig.primary.requests
    assert again.messages[:-2] == first.messages  # the same conversation, then the answer and what is wrong
    assert again.messages[-2] == {"role": "assistant", "content": NOT_A_PERSON}
    assert again.messages[-1] == {
        "role": "user",
        "content": 'Your previous answer does not match the required JSON Schema:\n- at $.name: 1 is not of type '
                   '"string"\nReply again with only the corrected JSON value.',
    }


async def test_an_answer_that_is_not_json_is_asked_again(rig: Rig) -> None:
    rig.primary.add(answer("Ada, I think"), answer(ADA))
    result = await rig.engine.run(rig.task(output_schema=PERSON))
    assert result.attempts == 2
    assert "the answer is not valid JSON" in rig.primary.requests[1].messages[-1]["content"]


async def test_an_answer_nested_too_deeply_is_asked_again(rig: Rig) -> None:
    rig.primary.add(answer("[" * 200 + "]" * 200), answer(ADA))
    result = await rig.engine.run(rig.task(output_schema=PERSON))
    assert result.payload == {"name": "Ada"}
    assert "levels deep; at most 128 are allowed" in rig.primary.requests[1].messages[-1]["content"]


async def test_after_max_attempts_misfits_the_call_fails_with_the_last_errors(rig: Rig) -> None:
    rig.primary.add(*[answer(NOT_A_PERSON)] * 3)
    with pytest.raises(StructuredGenerationError) as raised:
        await rig.engine.run(rig.task(output_schema=PERSON, config=TaskConfig(max_attempts=3)))
    assert len(rig.primary.requests) == 3
    assert raised.value.detail.startswith("no answer matched output_schema after 3 attempts; last errors: at $.name")
    assert raised.value.details == {"errors": ['at $.name: 1 is not of type "string"']}


async def test_max_attempts_defaults_to_five(rig: Rig) -> None:
    rig.primary.add(*[answer(NOT_A_PERSON)] * 6)
    with pytest.raises(StructuredGenerationError):
        await rig.engine.run(rig.task(output_schema=PERSON))
    assert len(rig.primary.requests) == 5


async def test_the_operators_attempt_cap_lowers_the_default(rig: Rig) -> None:
    rig.primary.add(*[answer(NOT_A_PERSON)] * 3)
    with pytest.raises(StructuredGenerationError):
        await rig.limited(max_attempts=2).run(rig.task(output_schema=PERSON))
    assert len(rig.primary.requests) == 2


async def test_a_call_asking_more_attempts_than_the_cap_is_refused_before_anything_happens(rig: Rig) -> None:
    with pytest.raises(RequestValidationError, match="must be at most 2 on this server, got 3"):
        await rig.limited(max_attempts=2).run(rig.task(output_schema=PERSON, config=TaskConfig(max_attempts=3)))
    assert rig.primary.requests == [] and rig.recorder.recorded == []
    assert await rig.store.get_function(rig.project, "spec") is None  # not even the function is stored


async def test_without_an_output_schema_any_answer_is_taken_at_once(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON))
    result = await rig.engine.run(rig.task(config=TaskConfig(max_attempts=3)))
    assert (result.text, result.payload, result.attempts) == (NOT_A_PERSON, None, 1)


async def test_a_re_ask_goes_to_the_model_that_answered_not_to_an_earlier_failed_one(rig: Rig) -> None:
    rig.primary.add(ProviderError("down"))
    rig.backup.add(answer(NOT_A_PERSON), answer(ADA))
    result = await rig.engine.run(rig.task(output_schema=PERSON, models=chain(PRIMARY, BACKUP)))
    assert (result.model, result.attempts) == (BACKUP, 2)
    assert (len(rig.primary.requests), len(rig.backup.requests)) == (1, 2)


async def test_tool_calls_are_not_held_to_the_output_schema(rig: Rig) -> None:
    call = ToolCall(id="call-1", name="weather", arguments='{"city": 7}')
    rig.primary.add(ChatResponse(text="", tool_calls=[call], finish_reason="tool_calls"))
    result = await rig.engine.run(rig.task(output_schema=PERSON, tools=[WEATHER_TOOL]))
    assert (result.tool_calls, result.payload, result.finish_reason, result.attempts) == (
        [call], None, "tool_calls", 1)


async def test_a_structured_stream_whose_answer_misses_the_schema_after_output_ends_with_failed(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON), answer(ADA))
    events = await events_of(rig.engine.stream(rig.task(output_schema=PERSON)))
    assert shown(events) == NOT_A_PERSON  # the client already has the misfit: it cannot be taken back
    error = failed(events)
    assert isinstance(error, StructuredGenerationError) and error.details == {
        "errors": ['at $.name: 1 is not of type "string"']}
    assert len(rig.primary.requests) == 1


async def test_a_structured_stream_whose_answer_misses_the_schema_before_any_output_is_asked_again_like_run(
    rig: Rig,
) -> None:
    rig.primary.add(answer(""), answer(ADA))  # the first answer is empty: nothing went out to the client
    events = await events_of(rig.engine.stream(rig.task(output_schema=PERSON)))
    result = finished(events)
    assert (result.payload, result.attempts, shown(events)) == ({"name": "Ada"}, 2, ADA)
    assert rig.primary.requests[1].messages[-1]["content"].startswith(
        "Your previous answer does not match the required JSON Schema:\n- the answer is not valid JSON")


# ---------------------------------------------------------------- fallback along the model chain

# Each made afresh per test: a raised error keeps its traceback, and with it the test's frames.
FALLS_BACK: dict[str, Callable[[], TaskgateError]] = {
    "ProviderError": lambda: ProviderError("boom"),
    "rate limited": lambda: UpstreamRateLimitedError("slow down"),
    "timed out": lambda: UpstreamTimeoutError("timed out"),
    "unavailable": lambda: UpstreamUnavailableError("overloaded"),
    "malformed answer": lambda: UpstreamProtocolError("garbled"),
    "upstream 401": lambda: classify_upstream_status(401, "bad key"),  # the server's credentials, not the caller's
    "upstream 500": lambda: classify_upstream_status(500, "oops"),
}
DOES_NOT_FALL_BACK: dict[str, Callable[[], TaskgateError]] = {
    "ModelRejectedError": lambda: ModelRejectedError("unknown model"),
    "upstream 400": lambda: classify_upstream_status(400, "max_tokens is too large"),
    "upstream 404": lambda: classify_upstream_status(404, "no such model"),
    "caller's error": lambda: BadRequestError("the caller's request is wrong"),
}


@pytest.mark.parametrize("make", FALLS_BACK.values(), ids=FALLS_BACK)
async def test_a_provider_failure_falls_back_to_the_next_model(rig: Rig, make: Callable[[], TaskgateError]) -> None:
    error = make()
    assert isinstance(error, ProviderError)
    rig.primary.add(error)
    rig.backup.add(answer("hi"))
    result = await rig.engine.run(rig.task(models=chain(PRIMARY, BACKUP)))
    assert (result.text, result.model) == ("hi", BACKUP)
    assert result.models_failed == [f"{PRIMARY}: {error.detail}"]


@pytest.mark.parametrize("make", DOES_NOT_FALL_BACK.values(), ids=DOES_NOT_FALL_BACK)
async def test_a_rejected_or_wrong_request_does_not_fall_back(rig: Rig, make: Callable[[], TaskgateError]) -> None:
    error = make()
    rig.primary.add(error)
    rig.backup.add(answer("hi"))
    with pytest.raises(type(error)) as raised:
        await rig.engine.run(rig.task(models=chain(PRIMARY, BACKUP)))
    assert raised.value is error
    assert rig.backup.requests == []


async def test_when_one_model_fails_alone_its_error_is_raised_as_it_is(rig: Rig) -> None:
    error = UpstreamTimeoutError("timed out")
    rig.primary.add(error)
    with pytest.raises(UpstreamTimeoutError) as raised:
        await rig.engine.run(rig.task())
    assert raised.value is error


async def test_when_every_model_fails_the_last_ones_error_is_raised_naming_the_earlier_ones(rig: Rig) -> None:
    rig.primary.add(UpstreamTimeoutError("timed out"))
    rig.backup.add(UpstreamUnavailableError("overloaded", upstream_status=503))
    with pytest.raises(UpstreamUnavailableError) as raised:
        await rig.engine.run(rig.task(models=chain(PRIMARY, BACKUP)))
    assert raised.value.detail == f"{BACKUP}: overloaded (earlier models failed: {PRIMARY}: timed out)"
    assert raised.value.upstream_status == 503


async def test_when_every_model_fails_the_span_lists_them_all_in_models_failed(rig: Rig) -> None:
    rig.primary.add(UpstreamTimeoutError("timed out"))
    rig.backup.add(UpstreamUnavailableError("overloaded"))
    with pytest.raises(UpstreamUnavailableError):
        await rig.engine.run(rig.task(models=chain(PRIMARY, BACKUP)))
    span = await rig.only_span()
    assert span.models_failed == [f"{PRIMARY}: timed out", f"{BACKUP}: overloaded"]


async def test_a_stream_falls_back_when_its_model_fails_before_any_output(rig: Rig) -> None:
    usage_only = ChatChunk(usage=Usage(input_tokens=3))  # nothing a client would see: not output yet
    rig.primary.add(ProviderError("refused at once"), [usage_only, ProviderError("cut")])
    rig.backup.add(answer("hello there"), answer("hi"))
    opened_badly = finished(await events_of(rig.engine.stream(rig.task(models=chain(PRIMARY, BACKUP)))))
    cut_before_output = finished(await events_of(rig.engine.stream(rig.task(models=chain(PRIMARY, BACKUP)))))
    assert (opened_badly.model, opened_badly.models_failed) == (BACKUP, [f"{PRIMARY}: refused at once"])
    assert (cut_before_output.model, cut_before_output.models_failed) == (BACKUP, [f"{PRIMARY}: cut"])
    assert rig.primary.streams_open == rig.backup.streams_open == 0  # the failed stream was closed


async def test_a_stream_that_fails_after_output_ends_with_failed_and_does_not_fall_back(rig: Rig) -> None:
    rig.primary.add([ChatChunk(text="Hel"), UpstreamUnavailableError("cut")])
    rig.backup.add(answer("hi"))
    events = await events_of(rig.engine.stream(rig.task(models=chain(PRIMARY, BACKUP))))
    assert isinstance(events[0], Started) and shown(events) == "Hel"
    assert isinstance(failed(events), UpstreamUnavailableError)
    assert rig.backup.requests == []
    span = await rig.only_span()
    assert (span.status, span.error, span.output, span.model_used) == ("error", "cut", "Hel", PRIMARY)


async def test_a_stream_that_fails_before_it_starts_raises_instead_of_yielding_failed(rig: Rig) -> None:
    rig.primary.add(ModelRejectedError("unknown model"))
    rig.backup.add(answer("hi"))
    with pytest.raises(ModelRejectedError):
        await anext(rig.engine.stream(rig.task(models=chain(PRIMARY, BACKUP))))
    assert rig.backup.requests == []
    assert (await rig.only_span()).status == "error"


# ---------------------------------------------------------------- what one request may cost upstream


async def test_re_asks_and_fallbacks_share_the_operators_limit_on_upstream_calls(rig: Rig) -> None:
    rig.primary.add(ProviderError("down"))
    rig.backup.add(*[answer(NOT_A_PERSON)] * 5)
    with pytest.raises(CallBudgetExceededError, match="made 3 upstream calls"):
        await rig.limited(max_upstream_calls=3).run(rig.task(output_schema=PERSON, models=chain(PRIMARY, BACKUP)))
    assert (len(rig.primary.requests), len(rig.backup.requests)) == (1, 2)


async def test_a_fallback_over_the_limit_is_refused_naming_the_models_that_failed(rig: Rig) -> None:
    rig.primary.add(ProviderError("down"))
    rig.backup.add(answer("hi"))
    with pytest.raises(CallBudgetExceededError, match=f"models failed: {PRIMARY}: down"):
        await rig.limited(max_upstream_calls=1).run(rig.task(models=chain(PRIMARY, BACKUP)))
    assert rig.backup.requests == []


async def test_no_further_call_is_made_once_the_request_has_used_its_tokens(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON, input_tokens=90, output_tokens=20), answer(ADA))
    with pytest.raises(CallBudgetExceededError, match="used 110 tokens, over the 100"):
        await rig.limited(max_request_tokens=100).run(rig.task(output_schema=PERSON))
    assert len(rig.primary.requests) == 1


async def test_a_stream_counts_against_the_same_limits(rig: Rig) -> None:
    rig.primary.add(ProviderError("down"))
    rig.backup.add(answer("hi"))
    with pytest.raises(CallBudgetExceededError):
        await anext(rig.limited(max_upstream_calls=1).stream(rig.task(models=chain(PRIMARY, BACKUP))))
    assert rig.backup.requests == []


# ---------------------------------------------------------------- the result cache (invocation.cache.ttl)

CACHED = TaskConfig(cache_ttl=60)


async def test_a_repeated_call_is_answered_from_the_cache_without_asking_the_model(rig: Rig) -> None:
    rig.primary.add(answer(ADA))
    first = await rig.engine.run(rig.task(output_schema=PERSON, config=CACHED))
    again = await rig.engine.run(rig.task(output_schema=PERSON, config=CACHED))
    assert len(rig.primary.requests) == 1
    assert (again.cached, again.payload, again.model) == (True, {"name": "Ada"}, PRIMARY)
    assert (again.cost, again.usage.total_tokens, again.attempts) == (0.0, 0, 0)
    assert (first.cached, first.cost is not None and first.cost > 0) == (False, True)
    assert again.span_id != first.span_id  # a hit is a call of its own


MISSES: dict[str, Callable[[Task], Task]] = {
    "input": lambda task: replace(task, input="goodbye"),
    "instructions": lambda task: replace(task, instructions="Be brief."),
    "output schema": lambda task: replace(task, output_schema={**PERSON, "title": "Person"}),
    "input schema": lambda task: replace(task, input_schema={"type": "string"}),
    "model chain": lambda task: replace(task, models=chain(PRIMARY, BACKUP)),
    "model options": lambda task: replace(task, models=[ModelChoice(PRIMARY, options={"temperature": 0})]),
    "request options": lambda task: replace(task, options={"temperature": 0}),
    "tools": lambda task: replace(task, tools=[WEATHER_TOOL]),
    "function": lambda task: replace(task, function_name="other"),
    "examples": lambda task: replace(task, examples=[Example(input="hi", output={"name": "Bo"})]),
}


@pytest.mark.parametrize("change", list(MISSES.values()), ids=list(MISSES))
async def test_a_call_that_differs_in_anything_the_model_sees_or_who_asks_misses_the_cache(
    rig: Rig, change: Callable[[Task], Task]
) -> None:
    rig.primary.add(answer(ADA), answer(ADA))
    base = rig.task(output_schema=PERSON, config=CACHED)
    await rig.engine.run(base)
    changed = await rig.engine.run(change(base))
    assert (changed.cached, len(rig.primary.requests)) == (False, 2)


async def test_the_same_call_in_another_project_misses_the_cache(rig: Rig) -> None:
    rig.primary.add(answer("hi"), answer("hi"))
    await rig.engine.run(rig.task(config=CACHED))
    elsewhere = await rig.engine.run(rig.task(config=CACHED, project_id=await rig.store.ensure_project(
        f"other-{rig.project}")))
    assert (elsewhere.cached, len(rig.primary.requests)) == (False, 2)


async def test_a_ttl_of_zero_never_caches(rig: Rig) -> None:
    rig.primary.add(answer("hi"), answer("hi"))
    await rig.engine.run(rig.task())
    again = await rig.engine.run(rig.task())
    assert (again.cached, len(rig.primary.requests)) == (False, 2)


async def test_an_answer_is_kept_for_the_calls_ttl_and_asked_for_again_after_it(rig: Rig) -> None:
    rig.primary.add(answer("hi"), answer("hi"))
    await rig.engine.run(rig.task(config=CACHED))
    entries = cache_entries.c.project_id == rig.project
    expires = await rig.store.database.read(lambda c: c.execute(sa.select(cache_entries.c.expires_at)
                                                                .where(entries)).scalar_one())
    assert abs(expires - (datetime.now(UTC) + timedelta(seconds=60))) < timedelta(seconds=5)
    await rig.store.database.write(lambda c: c.execute(  # as if the 60 seconds had passed
        cache_entries.update().where(entries).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))))
    again = await rig.engine.run(rig.task(config=CACHED))
    assert (again.cached, len(rig.primary.requests)) == (False, 2)


async def test_a_failed_call_is_not_cached(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON), answer(ADA))
    config = TaskConfig(cache_ttl=60, max_attempts=1)
    with pytest.raises(StructuredGenerationError):
        await rig.engine.run(rig.task(output_schema=PERSON, config=config))
    result = await rig.engine.run(rig.task(output_schema=PERSON, config=config))
    assert (result.cached, result.payload) == (False, {"name": "Ada"})


async def test_a_cached_stream_replays_the_answer_in_one_delta(rig: Rig) -> None:
    rig.primary.add(answer('{ "name" : "Ada" }'))
    await rig.engine.run(rig.task(output_schema=PERSON, config=CACHED))
    events = await events_of(rig.engine.stream(rig.task(output_schema=PERSON, config=CACHED)))
    assert [type(event) for event in events] == [Started, TextDelta, Finished]
    assert shown(events) == '{"name":"Ada"}'  # the payload as compact JSON, not the model's spacing
    assert finished(events).cached and len(rig.primary.requests) == 1


async def test_a_cached_stream_replays_the_tool_calls_too(rig: Rig) -> None:
    call = ToolCall(id="call-1", name="weather", arguments='{"city": "Oslo"}')
    rig.primary.add(ChatResponse(text="", tool_calls=[call], finish_reason="tool_calls"))
    task = rig.task(tools=[WEATHER_TOOL], config=CACHED)
    live = await events_of(rig.engine.stream(task))
    replayed = await events_of(rig.engine.stream(task))
    assert finished(replayed).cached
    assert tool_deltas(replayed) == tool_deltas(live) == [ToolCallDelta(0, "call-1", "weather", call.arguments)]


async def test_a_streamed_answer_is_cached_for_a_later_run(rig: Rig) -> None:
    rig.primary.add(answer("hello there"))
    await events_of(rig.engine.stream(rig.task(config=CACHED)))
    result = await rig.engine.run(rig.task(config=CACHED))
    assert (result.cached, result.text, len(rig.primary.requests)) == (True, "hello there", 1)


# ---------------------------------------------------------------- few-shot examples


async def store_examples(rig: Rig, task: Task, inputs: list[str], few_shot_count: int | None = None) -> None:
    """Store the task's function with `inputs` as its examples (each labelled with its own first word),
    as the examples API does, before the engine first sees the function."""
    function = await rig.store.upsert_function(rig.project, task.function_name, definition_of(task))
    if few_shot_count is not None:
        await rig.store.set_few_shot_count(rig.project, task.function_name, few_shot_count)
    await rig.store.add_examples(rig.project, function.id, [
        ExampleRecord(id="", function_id=function.id, input=text, output={"name": text.split()[0]})
        for text in inputs
    ])


FRUIT = ["red apples", "yellow bananas", "dark cherries", "green grapes"]


async def test_examples_given_in_the_task_are_shown_as_turns_before_the_input(rig: Rig) -> None:
    rig.primary.add(answer(ADA))
    examples = [Example(input="Bo here", output={"name": "Bo"}, comment="a short one")]
    await rig.engine.run(rig.task(output_schema=PERSON, examples=examples))
    messages = rig.primary.requests[0].messages
    assert messages[1:] == [
        {"role": "user", "content": "Bo here\n(Example: a short one)"},
        {"role": "assistant", "content": '{"name":"Bo"}'},
        {"role": "user", "content": "hello"},
    ]


async def test_the_stored_examples_closest_to_the_input_are_shown_first(rig: Rig) -> None:
    task = rig.task(input="which bananas are ripe", output_schema=PERSON)
    await store_examples(rig, task, FRUIT)
    rig.primary.add(answer(ADA))
    await rig.engine.run(task)
    shown_examples = demonstrations(rig.primary.requests[0])
    assert len(shown_examples) == 3  # a function shows 3 stored examples unless told otherwise
    assert shown_examples[0] == "yellow bananas"  # the only one sharing a word with the input


async def test_no_more_stored_examples_are_shown_than_the_functions_few_shot_count(rig: Rig) -> None:
    task = rig.task(input="cherries", output_schema=PERSON)
    await store_examples(rig, task, FRUIT, few_shot_count=1)
    rig.primary.add(answer(ADA))
    await rig.engine.run(task)
    assert demonstrations(rig.primary.requests[0]) == ["dark cherries"]


async def test_a_function_with_a_few_shot_count_of_zero_shows_no_stored_examples(rig: Rig) -> None:
    task = rig.task(input="cherries", output_schema=PERSON)
    await store_examples(rig, task, FRUIT, few_shot_count=0)
    rig.primary.add(answer(ADA))
    await rig.engine.run(task)
    assert demonstrations(rig.primary.requests[0]) == []


async def test_the_tasks_own_examples_come_before_the_stored_ones(rig: Rig) -> None:
    task = rig.task(input="cherries", output_schema=PERSON, examples=[Example(input="Bo", output={"name": "Bo"})])
    await store_examples(rig, task, FRUIT, few_shot_count=1)
    rig.primary.add(answer(ADA))
    await rig.engine.run(task)
    assert demonstrations(rig.primary.requests[0]) == ["Bo", "dark cherries"]


async def test_a_chat_that_is_not_a_stored_function_shows_no_stored_examples(rig: Rig) -> None:
    task = rig.task(input="cherries", output_schema=PERSON)
    await store_examples(rig, task, FRUIT)
    rig.primary.add(answer(ADA))
    await rig.engine.run(replace(task, record_function=False))
    assert demonstrations(rig.primary.requests[0]) == []


# ---------------------------------------------------------------- usage and cost


async def test_usage_is_summed_over_every_attempt(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON, 10, 5), answer(ADA, 20, 7))
    result = await rig.engine.run(rig.task(output_schema=PERSON))
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (30, 12, 42)


async def test_cost_is_each_attempts_usage_priced_from_genai_prices(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON, 1000, 500), answer(ADA, 2000, 700))
    result = await rig.engine.run(rig.task(output_schema=PERSON))
    assert result.cost == pytest.approx(list_price(Usage(1000, 500)) + list_price(Usage(2000, 700)))


async def test_input_tokens_read_from_the_providers_cache_are_priced_as_such(rig: Rig) -> None:
    usage = Usage(input_tokens=1000, output_tokens=10, cache_read_tokens=800)
    rig.primary.add(ChatResponse(text="hi", usage=usage))
    result = await rig.engine.run(rig.task())
    assert result.cost == pytest.approx(list_price(usage))
    assert result.cost is not None and result.cost < list_price(Usage(1000, 10))


async def test_a_model_without_a_known_price_has_no_cost(rig: Rig) -> None:
    rig.backup.add(answer("hi"))
    result = await rig.engine.run(rig.task(models=chain(BACKUP)))
    assert result.cost is None and result.usage.total_tokens == 15


async def test_a_stream_takes_its_usage_and_cost_from_its_chunks(rig: Rig) -> None:
    rig.primary.add([ChatChunk(text="hi"), ChatChunk(usage=Usage(input_tokens=7)),
                     ChatChunk(finish_reason="stop", usage=Usage(output_tokens=2))])
    result = finished(await events_of(rig.engine.stream(rig.task())))
    assert (result.usage.input_tokens, result.usage.output_tokens) == (7, 2)
    assert result.cost == pytest.approx(list_price(Usage(7, 2)))


# ---------------------------------------------------------------- spans


async def test_a_call_records_one_span_of_everything_that_happened(rig: Rig) -> None:
    rig.backup.add(UpstreamTimeoutError("timed out"))
    rig.primary.add(answer(NOT_A_PERSON, 10, 5), answer(ADA, 20, 7))
    result = await rig.engine.run(rig.task(input={"text": "Ada wrote"}, output_schema=PERSON,
                                           models=chain(BACKUP, PRIMARY), tags={"team": "a"}))
    span = await rig.only_span()
    assert (span.id, span.trace_id, span.parent_id) == (result.span_id, result.trace_id, None)
    assert (span.name, span.function_name, span.type, span.tags) == ("spec", "spec", "call", {"team": "a"})
    assert (span.input, span.output, span.status, span.error) == ({"text": "Ada wrote"}, {"name": "Ada"}, "ok", None)
    assert (span.model_chain, span.model_used, span.models_failed) == (
        [BACKUP, PRIMARY], PRIMARY, [f"{BACKUP}: timed out"])
    assert (span.attempts, span.cost) == (2, pytest.approx(result.cost))
    assert span.usage == {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42, "reasoning_tokens": 0,
                          "cache_read_tokens": 0, "cache_write_tokens": 0}
    function = await rig.store.get_function(rig.project, "spec")
    assert function is not None  # the span names the revision the call ran with, for its page's instructions
    assert span.meta == {"script_cached": False, "cached": False, "finish_reason": "stop",
                         REVISION_KEY: function.revision_id}
    assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time


async def test_a_failed_call_records_an_error_span_with_its_last_answer(rig: Rig) -> None:
    rig.primary.add(answer(NOT_A_PERSON), answer("no"))
    with pytest.raises(StructuredGenerationError) as raised:
        await rig.engine.run(rig.task(output_schema=PERSON, config=TaskConfig(max_attempts=2)))
    span = await rig.only_span()
    assert (span.status, span.error, span.output) == ("error", raised.value.detail, "no")
    assert (span.model_used, span.attempts, span.usage["total_tokens"]) == (PRIMARY, 2, 30)


async def test_a_stream_records_the_same_span_as_a_run(rig: Rig) -> None:
    task = rig.task(output_schema=PERSON, models=chain(BACKUP, PRIMARY))
    for _ in range(2):
        rig.backup.add(UpstreamTimeoutError("timed out"))
        rig.primary.add(answer(ADA))
    ran = await rig.engine.run(task)
    events = await events_of(rig.engine.stream(task))
    streamed = finished(events)
    assert events[0] == Started(streamed.span_id, streamed.trace_id)
    fields = ("name", "input", "output", "status", "error", "model_chain", "model_used", "models_failed",
              "attempts", "usage", "cost", "tags")
    run_span, stream_span = await rig.span(ran.span_id), await rig.span(streamed.span_id)
    assert {name: getattr(stream_span, name) for name in fields} == {name: getattr(run_span, name) for name in fields}


async def test_a_call_under_a_parent_span_joins_the_parents_trace(rig: Rig) -> None:
    rig.primary.add(answer("parent"), answer("child"))
    parent = await rig.engine.run(rig.task())
    child = await rig.engine.run(rig.task(parent_span_id=parent.span_id))
    assert child.trace_id == parent.trace_id != ""
    span = await rig.span(child.span_id)
    assert (span.parent_id, span.trace_id) == (parent.span_id, parent.trace_id)


async def test_calls_without_a_parent_each_start_their_own_trace(rig: Rig) -> None:
    rig.primary.add(answer("one"), answer("two"))
    one, two = await rig.engine.run(rig.task()), await rig.engine.run(rig.task())
    assert one.trace_id != two.trace_id


async def test_an_unknown_parent_span_is_refused_before_any_request(rig: Rig) -> None:
    with pytest.raises(NotFoundError, match="parent span 'nope' was not found"):
        await rig.engine.run(rig.task(parent_span_id="nope"))
    assert rig.primary.requests == [] and rig.recorder.recorded == []


async def test_the_adapters_notes_and_the_tool_calls_are_kept_in_the_span(rig: Rig) -> None:
    call = ToolCall(id="call-1", name="weather", arguments='{"city": "Oslo"}')
    rig.primary.add(ChatResponse(text="", tool_calls=[call], finish_reason="tool_calls",
                                 notes=["tool_choice was dropped"]))
    await rig.engine.run(rig.task(tools=[WEATHER_TOOL]))
    meta = (await rig.only_span()).meta
    assert meta["notes"] == ["tool_choice was dropped"]
    assert meta["tool_calls"] == [{"id": "call-1", "name": "weather", "arguments": '{"city": "Oslo"}'}]


async def test_a_cache_hit_records_its_own_span_marked_cached(rig: Rig) -> None:
    rig.primary.add(answer("hi"))
    await rig.engine.run(rig.task(config=CACHED))
    hit = await rig.engine.run(rig.task(config=CACHED))
    span = await rig.span(hit.span_id)
    assert (span.status, span.output, span.attempts, span.cost, span.meta["cached"]) == ("ok", "hi", 0, 0.0, True)


async def test_a_cancelled_run_records_one_cancelled_span(rig: Rig) -> None:
    rig.primary.delay_s = 30.0  # long enough for the test to cancel it: nothing waits it out
    rig.primary.add(answer("never seen"))
    running = asyncio.create_task(rig.engine.run(rig.task()))
    await until(lambda: rig.primary.requests)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    span = await rig.only_span()
    assert (span.status, span.error) == ("cancelled", StreamCancelledError.default_message)


async def test_a_stream_left_at_started_records_one_cancelled_span_and_closes_the_upstream(rig: Rig) -> None:
    rig.primary.add(answer("a long answer"))
    events = rig.engine.stream(rig.task())
    assert isinstance(await anext(events), Started)
    await events.aclose()
    assert (await rig.only_span()).status == "cancelled"
    assert rig.primary.streams_open == 0


async def test_a_stream_left_midway_records_the_output_so_far(rig: Rig) -> None:
    rig.primary.add([ChatChunk(text="Hello"), ChatChunk(text=" world"), ChatChunk(finish_reason="stop")])
    events = rig.engine.stream(rig.task())
    assert isinstance(await anext(events), Started)
    assert await anext(events) == TextDelta("Hello")
    await events.aclose()
    span = await rig.only_span()
    assert (span.status, span.output, span.model_used) == ("cancelled", "Hello", PRIMARY)
    assert rig.primary.streams_open == 0


async def test_a_cache_hit_left_at_started_is_recorded_as_ok_not_cancelled(rig: Rig) -> None:
    rig.primary.add(answer("hi"))
    await rig.engine.run(rig.task(config=CACHED))
    rig.recorder.recorded.clear()
    events = rig.engine.stream(rig.task(config=CACHED))
    assert isinstance(await anext(events), Started)
    await events.aclose()
    span = await rig.only_span()
    assert (span.status, span.meta["cached"]) == ("ok", True)


# ---------------------------------------------------------------- what is refused before any request


async def test_with_validate_input_an_input_that_misses_the_input_schema_is_refused(rig: Rig) -> None:
    config = TaskConfig(validate_input=True)
    with pytest.raises(InputValidationError, match=r"input does not match input_schema: at \$: 42 is not of type"):
        await rig.engine.run(rig.task(input=42, input_schema={"type": "string"}, config=config))
    assert rig.primary.requests == [] and rig.recorder.recorded == []


async def test_without_validate_input_the_input_is_not_checked_against_its_schema(rig: Rig) -> None:
    rig.primary.add(answer("hi"))
    result = await rig.engine.run(rig.task(input=42, input_schema={"type": "string"}))
    assert result.text == "hi"


SCHEMA_PLACES: dict[str, dict[str, Any]] = {
    "input_schema": {"input_schema": OUTSIDE_REF},
    "output_schema": {"output_schema": {"type": "object", "properties": {"p": OUTSIDE_REF}}},
    "tools[0] parameters": {"tools": [{"type": "function", "function": {"name": "f", "parameters": OUTSIDE_REF}}]},
}


@pytest.mark.parametrize("where", list(SCHEMA_PLACES))
async def test_a_schema_referring_outside_itself_is_refused_before_any_request(rig: Rig, where: str) -> None:
    with pytest.raises(SchemaError, match="^" + re.escape(f"{where} has $ref 'https://example.com/person.json'")):
        await rig.engine.run(rig.task(**SCHEMA_PLACES[where]))
    assert rig.primary.requests == [] and rig.recorder.recorded == []


async def test_an_unknown_provider_anywhere_in_the_chain_is_refused_before_any_request(rig: Rig) -> None:
    with pytest.raises(ProviderNotConfiguredError, match="unknown provider 'nowhere'"):
        await rig.engine.run(rig.task(models=chain(PRIMARY, "nowhere/model")))
    assert rig.primary.requests == [] and rig.recorder.recorded == []


# ---- image models and media


async def test_an_image_model_is_asked_through_its_images_api_and_priced_per_image(rig: Rig) -> None:
    result = await rig.engine.run(rig.task(input={"description": "a kite", "n": 2}, models=chain("openai/dall-e-3")))
    [asked] = rig.primary.image_requests
    assert asked.model == "dall-e-3" and asked.prompt == "a kite"
    assert asked.options == {"n": 2, "response_format": "b64_json"}
    assert not rig.primary.requests  # no chat request
    assert len(result.images) == 2 and result.payload["image"] == result.images[0].b64
    assert result.cost == pytest.approx(0.08) and result.text is None
    span = await rig.only_span()
    assert span.output["images"][0]["media_type"] == "image/png" and span.meta["images"] == 2


async def test_a_media_kind_the_model_cannot_take_is_refused_before_any_request(rig: Rig) -> None:
    audio = "data:audio/wav;base64," + base64.b64encode(b"RIFF\x00\x00\x00\x00WAVEfmt ").decode()
    with pytest.raises(BadRequestError, match="model 'openai/gpt-4o-mini' cannot take audio input"):
        await rig.engine.run(rig.task(input={"_opper_media_input": audio}))
    assert not rig.primary.requests and not rig.recorder.recorded
    assert await rig.engine.functions.get(rig.project, "spec") is None  # nothing stored for it
async def test_the_result_cache_key_tells_property_orders_apart_even_when_the_prompt_does_not() -> None:
    """In chat mode the schema is not in the messages: the key itself must carry the order."""
    from taskgate.engine.engine import _cache_key

    messages = [{"role": "user", "content": "judge this"}]
    thoughts, answer = {"thoughts": {"type": "string"}}, {"answer": {"type": "string"}}
    schema: dict[str, Any] = {"type": "object", "properties": {**thoughts, **answer}}
    flipped: dict[str, Any] = {"type": "object", "properties": {**answer, **thoughts}}

    def key(output_schema: dict[str, Any], **extra: Any) -> str:
        task = Task("p", "f", messages=messages, output_schema=output_schema, **extra)
        return _cache_key(task, messages, [])

    assert key(schema) == key({"type": "object", "properties": dict(schema["properties"])})
    assert key(schema) != key(flipped)
    assert key(schema, options={"a": 1, "b": 2}) == key(schema, options={"b": 2, "a": 1})  # the rest stays sorted
    tool = {"type": "function", "function": {"name": "t", "parameters": schema}}
    assert key(schema, tools=[tool]) != key(schema, tools=[{**tool, "function": {"name": "t", "parameters": flipped}}])
