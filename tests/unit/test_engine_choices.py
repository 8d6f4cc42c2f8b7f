"""Several answers to one task (`n`): each its own call and span, made at once, relayed as one
stream; the first failure stops the rest, and closing the stream closes every choice's upstream."""

from __future__ import annotations

import asyncio
import time

import pytest

from taskgate.engine.task import ChoiceEvent, Failed, Finished, Started, TextDelta
from taskgate.errors import ModelRejectedError
from tests.fakes.provider import Behaviour, FakeProvider
from tests.unit.test_engine_stream import Wired, wired

__all__ = ["wired"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_run_choices_makes_one_recorded_call_each_at_once(wired: Wired, fake: FakeProvider) -> None:
    fake.script("slow", *(Behaviour(text=f"answer {n}", delay_s=0.3) for n in range(3)))
    start = time.perf_counter()
    results = await wired.engine.run_choices(wired.task("openai/slow"), 3)
    assert time.perf_counter() - start < 0.8  # at once: about one call's time, not three
    assert sorted(result.text or "" for result in results) == ["answer 0", "answer 1", "answer 2"]
    assert len({result.span_id for result in results}) == 3
    for result in results:
        span = await wired.recorder.find_span(wired.project, result.span_id)
        assert span is not None and span.status == "ok" and span.output == result.text


async def test_the_first_failure_stops_the_other_choices(wired: Wired, fake: FakeProvider) -> None:
    fake.script("mixed", Behaviour(status=400), Behaviour(text="late", delay_s=2.0))
    start = time.perf_counter()
    with pytest.raises(ModelRejectedError):
        await wired.engine.run_choices(wired.task("openai/mixed"), 2)
    assert time.perf_counter() - start < 1.5  # the late choice was not waited for


async def test_stream_choices_starts_all_then_relays_each_to_its_finish(wired: Wired, fake: FakeProvider) -> None:
    fake.script("streamy", *(Behaviour(text=f"streamed answer {n}", event_delay_s=0.002) for n in range(3)))
    events = [event async for event in wired.engine.stream_choices(wired.task("openai/streamy"), 3)]
    assert all(isinstance(event, ChoiceEvent) for event in events)
    assert [(event.index, type(event.event)) for event in events[:3]] == [(n, Started) for n in range(3)]
    for index in range(3):
        mine = [event.event for event in events if event.index == index]
        assert isinstance(mine[-1], Finished)
        text = "".join(event.text for event in mine if isinstance(event, TextDelta))
        assert text == mine[-1].result.text and text.startswith("streamed answer")


async def test_closing_the_stream_closes_every_choice(wired: Wired, fake: FakeProvider) -> None:
    fake.script("long", *(Behaviour(text="word " * 200, event_delay_s=0.02) for _ in range(2)))
    events = wired.engine.stream_choices(wired.task("openai/long"), 2)
    starts = [(await anext(events)).event for _ in range(2)]
    await anext(events)  # the relay is running
    await events.aclose()
    for start in starts:
        assert isinstance(start, Started)
        span = await wired.recorder.find_span(wired.project, start.span_id)
        assert span is not None and span.status == "cancelled"
    assert await asyncio.to_thread(fake.wait_disconnects, 2, 10.0)


async def test_a_failure_before_every_choice_started_is_raised(wired: Wired, fake: FakeProvider) -> None:
    fake.script("half", Behaviour(status=400), Behaviour(text="fine"))
    events = wired.engine.stream_choices(wired.task("openai/half"), 2)
    with pytest.raises(ModelRejectedError):
        await anext(events)


async def test_a_choice_failing_mid_stream_is_the_last_event(wired: Wired, fake: FakeProvider) -> None:
    fake.script("breaks", Behaviour(text="one two three four five", fail_after=3),
                Behaviour(text="word " * 200, event_delay_s=0.02))
    events = [event async for event in wired.engine.stream_choices(wired.task("openai/breaks"), 2)]
    assert isinstance(events[-1].event, Failed)
    assert not any(isinstance(event.event, Finished) for event in events)
