"""Engine.stream() when its consumer stops early (the client left): the span is still recorded, once,
and the upstream request is closed. A real engine over SQLite, talking to the fake upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from taskgate.config import Settings
from taskgate.engine.engine import Engine
from taskgate.engine.task import Failed, Finished, ModelChoice, Started, Task, TaskConfig, TextDelta
from taskgate.providers.registry import ProviderRegistry
from taskgate.store import open_store
from taskgate.telemetry import SpanRecorder
from tests.fakes.provider import Behaviour, FakeProvider

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass(slots=True)
class Wired:
    engine: Engine
    recorder: SpanRecorder
    project: str

    def task(self, model: str, cache_ttl: int = 0) -> Task:
        return Task(project_id=self.project, function_name="leaver", input="x", models=[ModelChoice(model)],
                    config=TaskConfig(cache_ttl=cache_ttl))


@pytest_asyncio.fixture
async def wired(fake: FakeProvider, tmp_path: Path) -> AsyncIterator[Wired]:
    store = await open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    recorder = SpanRecorder(store)
    registry = ProviderRegistry(Settings.from_env({"OPENAI_API_KEY": "sk-test",
                                                   "OPENAI_BASE_URL": fake.openai_base_url}))
    yield Wired(Engine(store, recorder, registry, "openai/gpt-4o-mini"), recorder, await store.ensure_project("e"))
    await registry.aclose()
    await recorder.close()
    await store.close()


async def test_stopping_at_started_closes_the_upstream_and_marks_the_span(wired: Wired, fake: FakeProvider) -> None:
    fake.script("long", Behaviour(text="word " * 200, event_delay_s=0.02))
    events = wired.engine.stream(wired.task("openai/long"))
    first = await anext(events)
    assert isinstance(first, Started)
    await events.aclose()
    span = await wired.recorder.find_span(wired.project, first.span_id)
    assert span is not None and span.status == "cancelled"
    assert await asyncio.to_thread(fake.wait_disconnects, 1, 10.0)


async def test_a_cache_hit_is_recorded_even_when_the_consumer_stops_at_started(wired: Wired) -> None:
    await wired.engine.run(wired.task("openai/cached", cache_ttl=60))
    events = wired.engine.stream(wired.task("openai/cached", cache_ttl=60))
    first = await anext(events)
    assert isinstance(first, Started)
    await events.aclose()
    span = await wired.recorder.find_span(wired.project, first.span_id)
    assert span is not None and span.status == "ok" and span.meta["cached"] is True


async def test_held_structured_text_lets_a_streamed_misfit_be_asked_again(wired: Wired, fake: FakeProvider) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    for hold in (False, True):
        fake.script("held", Behaviour(json={"n": "one"}), Behaviour(json={"n": 1}))
        task = wired.task("openai/held")
        task.output_schema, task.hold_structured_text = schema, hold
        events = [event async for event in wired.engine.stream(task)]
        if hold:  # nothing went out before it validated, so the misfit was asked again
            assert [type(event) for event in events] == [Started, Finished]
            assert events[-1].result.payload == {"n": 1} and events[-1].result.attempts == 2
        else:  # the misfit's text went out: a stream cannot take it back
            assert isinstance(events[1], TextDelta) and isinstance(events[-1], Failed)
        fake.clear()
