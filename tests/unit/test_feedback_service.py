"""The engine's feedback service over a real SQLite file: it finds a call's span while that span
still waits in the recorder (never flushed here), saves examples the next call's few-shot
selection sees, and auto-saves on feedback at the configured score. And the setting's bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from taskgate.api.v3.run_shapes import task_from_run_request
from taskgate.config import ConfigError, Settings
from taskgate.engine.engine import Engine
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.providers.base import ChatResponse, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.scripted import ScriptedAdapter
from taskgate.store import open_store
from taskgate.store.base import SpanRecord, Store
from taskgate.telemetry import SpanRecorder

MODEL = "openai/gpt-4o-mini"


@dataclass(slots=True)
class Rig:
    engine: Engine
    store: Store
    adapter: ScriptedAdapter
    project: str

    async def call(self, name: str, text: str = "ok") -> str:
        self.adapter.add(ChatResponse(text=text, usage=Usage(input_tokens=3, output_tokens=1)))
        result = await self.engine.run(task_from_run_request({"model": MODEL, "input": f"q {text}"},
                                                             self.project, name, None))
        return result.span_id


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = await open_store(f"sqlite:///{tmp_path / 'feedback.db'}")
    recorder = SpanRecorder(store, flush_interval=3600)  # not started: spans stay pending
    adapter = ScriptedAdapter()
    registry = ProviderRegistry(Settings.from_env({}), adapters={"openai": adapter})
    engine = Engine(store, recorder, registry, MODEL, feedback_autosave_score=0.5)
    yield Rig(engine, store, adapter, await store.ensure_project("feedback"))
    await recorder.close()
    await store.close()


async def test_a_pending_calls_span_is_saved_and_used_as_a_few_shot_example(rig: Rig) -> None:
    span_id = await rig.call("answer", "first")
    assert await rig.store.get_span(rig.project, span_id) is None  # still only in the recorder
    saved = await rig.engine.feedback.save_example(rig.project, span_id, comment="good one")
    function = await rig.engine.functions.get(rig.project, "answer")
    assert function is not None and saved.dataset_id == function.dataset_id
    assert (saved.example.input, saved.example.output, saved.example.comment) == ("q first", "first", "good one")
    await rig.call("answer", "second")
    prompt = "\n".join(str(message["content"]) for message in rig.adapter.requests[-1].messages)
    assert "q first" in prompt  # the selector was told: the next call's few-shot sees it


async def test_feedback_auto_saves_at_the_configured_score(rig: Rig) -> None:
    span_id = await rig.call("rated")
    below = await rig.engine.feedback.give_feedback(rig.project, span_id, 0.49, None, None)
    at = await rig.engine.feedback.give_feedback(rig.project, span_id, 0.5, "fine", None)
    assert (below.example_saved, at.example_saved) == (False, True)
    span = await rig.engine.feedback.span(rig.project, span_id)
    shown = await rig.engine.feedback.feedback_of(span)
    assert shown is not None and shown.data == {"score": 0.5, "comment": "fine"}


async def test_unknown_spans_and_spans_without_a_function(rig: Rig) -> None:
    with pytest.raises(NotFoundError):
        await rig.engine.feedback.give_feedback(rig.project, "nope", 1, None, None)
    other = await rig.store.ensure_project("other")
    span_id = await rig.call("mine")
    with pytest.raises(NotFoundError):
        await rig.engine.feedback.add_metric(other, span_id, "d", 1, None)
    await rig.engine.functions.delete(rig.project, "mine")
    with pytest.raises(NotFoundError, match="no longer exists"):
        await rig.engine.feedback.save_example(rig.project, span_id)


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "nan", "high"])
def test_the_autosave_score_setting_is_a_number_from_0_to_1(raw: str) -> None:
    with pytest.raises(ConfigError, match="TASKGATE_FEEDBACK_AUTOSAVE_SCORE"):
        Settings.from_env({"TASKGATE_FEEDBACK_AUTOSAVE_SCORE": raw})
    assert Settings.from_env({"TASKGATE_FEEDBACK_AUTOSAVE_SCORE": "0.25"}).feedback_autosave_score == 0.25
    assert Settings.from_env({}).feedback_autosave_score == 0.8


async def test_a_span_that_failed_or_has_no_function_has_nothing_to_save(rig: Rig) -> None:
    await rig.call("flaky")
    failed = SpanRecord(id="failed", trace_id="t", project_id=rig.project, name="flaky", status="error",
                        error="boom", function_name="flaky")
    plain = SpanRecord(id="plain", trace_id="t", project_id=rig.project, name="plain", output="x")
    for span in (failed, plain):
        await rig.engine.spans.write(span)
        with pytest.raises(BadRequestError):
            await rig.engine.feedback.save_example(rig.project, span.id)
        with pytest.raises(BadRequestError):
            await rig.engine.feedback.give_feedback(rig.project, span.id, 1, None, True)
        assert not (await rig.engine.feedback.give_feedback(rig.project, span.id, 1, None, None)).example_saved
