"""The engine's one attempt loop, stated on the scripted adapter: `run` and `stream` account, price,
check, ask again and record alike; a structured stream asks again only while it has sent nothing.

A real engine over a SQLite file; the providers are ScriptedAdapters handed to the registry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from taskgate.config import Settings
from taskgate.engine.engine import Engine
from taskgate.engine.schemas import as_written
from taskgate.engine.task import Event, Failed, Finished, ModelChoice, Result, Started, Task, TaskConfig, TextDelta
from taskgate.errors import ProviderError, StructuredGenerationError, TaskgateError
from taskgate.providers.base import ChatChunk, ChatResponse, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.scripted import ScriptedAdapter, Step
from taskgate.store import open_store
from taskgate.store.base import SpanRecord
from taskgate.telemetry import SpanRecorder

pytestmark = pytest.mark.asyncio(loop_scope="session")

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
FITS = '{"n": 1}'
USAGE = Usage(input_tokens=20, output_tokens=4)


def nothing() -> list[ChatChunk | TaskgateError]:
    """An attempt that streams no delta: the model finished without a word (a misfit, sent to nobody)."""
    return [ChatChunk(finish_reason="stop", usage=USAGE)]


@dataclass(slots=True)
class Wired:
    engine: Engine
    recorder: SpanRecorder
    project: str
    adapters: dict[str, ScriptedAdapter]

    def task(self, model: str = "openai/gpt-4o-mini", max_attempts: int | None = None) -> Task:
        return Task(project_id=self.project, function_name="loop", input="x", output_schema=SCHEMA,
                    models=[ModelChoice(model)], config=TaskConfig(max_attempts=max_attempts))

    async def span(self, span_id: str) -> SpanRecord:
        span = await self.recorder.find_span(self.project, span_id)
        assert span is not None
        return span


@pytest_asyncio.fixture
async def wired(tmp_path: Path) -> AsyncIterator[Wired]:
    store = await open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    recorder = SpanRecorder(store)
    adapters = {name: ScriptedAdapter() for name in ("openai", "local", "ollama")}
    registry = ProviderRegistry(Settings.from_env({}), adapters=adapters)
    engine = Engine(store, recorder, registry, "openai/gpt-4o-mini")
    yield Wired(engine, recorder, await store.ensure_project("loop"), adapters)
    await registry.aclose()
    await recorder.close()
    await store.close()


async def events_of(engine: Engine, task: Task) -> list[Event]:
    return [event async for event in engine.stream(task)]


async def outcome(wired: Wired, how: str, task: Task, *steps: Step) -> Result:
    """The result of `task` run or streamed over `steps`; a streamed one must have streamed cleanly."""
    wired.adapters["openai"].add(*steps)
    if how == "run":
        return await wired.engine.run(task)
    events = await events_of(wired.engine, task)
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished), events
    return events[-1].result


@pytest.mark.parametrize("how", ["run", "stream"])
async def test_an_answer_that_misfits_before_anything_was_sent_is_asked_again_alike(wired: Wired, how: str) -> None:
    result = await outcome(wired, how, wired.task(), nothing(), ChatResponse(text=FITS, usage=USAGE))
    assert result.payload == {"n": 1} and result.attempts == 2
    assert (result.usage.input_tokens, result.usage.output_tokens) == (40, 8)  # both attempts, accounted once
    assert result.cost is not None and result.cost > 0
    first, second = wired.adapters["openai"].requests
    assert len(second.messages) == len(first.messages) + 2
    assert second.messages[-2] == {"role": "assistant", "content": ""}
    assert "not valid JSON" in second.messages[-1]["content"]
    span = await wired.span(result.span_id)
    assert (span.status, span.attempts, span.output) == ("ok", 2, {"n": 1})
    assert span.usage["total_tokens"] == 48


async def test_run_and_stream_charge_the_same_for_the_same_attempts(wired: Wired) -> None:
    ran = await outcome(wired, "run", wired.task(), nothing(), ChatResponse(text=FITS, usage=USAGE))
    streamed = await outcome(wired, "stream", wired.task(), nothing(), ChatResponse(text=FITS, usage=USAGE))
    assert (ran.usage, ran.cost, ran.attempts) == (streamed.usage, streamed.cost, streamed.attempts)


async def test_once_a_delta_went_out_a_misfit_ends_the_stream_with_failed(wired: Wired) -> None:
    wired.adapters["openai"].add(ChatResponse(text='{"n": "one"}', usage=USAGE), ChatResponse(text=FITS))
    events = await events_of(wired.engine, wired.task())
    assert isinstance(events[0], Started) and any(isinstance(e, TextDelta) for e in events)
    failed = events[-1]
    assert isinstance(failed, Failed) and isinstance(failed.error, StructuredGenerationError)
    assert "the streamed answer does not match output_schema" in str(failed.error.detail)
    assert len(wired.adapters["openai"].requests) == 1  # not asked again: the client has the first answer
    span = await wired.span(events[0].span_id)
    assert (span.status, span.attempts, span.output) == ("error", 1, '{"n": "one"}')
    assert span.usage["input_tokens"] == 20


@pytest.mark.parametrize("how", ["run", "stream"])
async def test_attempts_run_out_alike_when_nothing_was_sent(wired: Wired, how: str) -> None:
    wired.adapters["openai"].add(nothing(), nothing())
    task = wired.task(max_attempts=2)
    if how == "run":
        with pytest.raises(StructuredGenerationError) as raised:
            await wired.engine.run(task)
        error: Any = raised.value
    else:
        events = await events_of(wired.engine, task)
        assert [type(e) for e in events] == [Started, Failed]  # Started went out with the first attempt
        error = events[-1].error  # type: ignore[union-attr]
    assert isinstance(error, StructuredGenerationError)
    assert "no answer matched output_schema after 2 attempts" in error.detail
    assert len(wired.adapters["openai"].requests) == 2


async def test_a_reask_that_cannot_be_made_ends_the_stream_with_the_providers_error(wired: Wired) -> None:
    wired.adapters["openai"].add(nothing(), ProviderError("upstream down", upstream_status=503))
    events = await events_of(wired.engine, wired.task())
    assert [type(e) for e in events] == [Started, Failed]
    assert isinstance(events[-1], Failed) and isinstance(events[-1].error, ProviderError)
    assert isinstance(events[0], Started)
    span = await wired.span(events[0].span_id)
    assert (span.status, span.attempts, span.output) == ("error", 1, "")


async def test_the_engine_hands_adapters_the_callers_schema(wired: Wired) -> None:
    """Strict-mode shaping is the OpenAI-compatible adapter's: the engine sends the schema as given,
    with its JSON as written (the caller's property order kept) as the key adapters cache their own forms by."""
    await outcome(wired, "run", wired.task(), ChatResponse(text=FITS))
    structured = wired.adapters["openai"].requests[0].structured
    assert structured is not None
    assert structured.schema == SCHEMA and "additionalProperties" not in structured.schema
    assert structured.key == as_written(SCHEMA)
    assert structured.key == b'{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}'


async def test_prices_come_from_the_catalogue_a_local_model_costing_nothing(wired: Wired) -> None:
    for provider in ("local", "ollama"):
        wired.adapters[provider].add(ChatResponse(text=FITS, usage=USAGE))
    assert (await wired.engine.run(wired.task("local/gemma"))).cost == 0.0
    assert (await wired.engine.run(wired.task("ollama/llama3"))).cost is None  # no price known: never a guess
    assert wired.engine.price("local", "gemma", USAGE) == 0.0
    assert wired.engine.price("ollama", "llama3", USAGE) is None
    priced = wired.engine.price("openai", "gpt-4o-mini", USAGE)
    assert priced is not None and priced > 0
