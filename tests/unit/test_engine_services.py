"""The engine's services keep their own caches and unwritten spans in step, so no handler has to.

A real engine over a real SQLite file, with the in-memory ScriptedAdapter as the provider. The
span recorder is never started: its background flush never runs, so what a test reads before a
flush can only come from the recorder's pending spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from taskgate.api.v3.run_shapes import task_from_run_request
from taskgate.config import Settings
from taskgate.engine.cost import PriceBook
from taskgate.engine.embeddings import EmbeddingTask
from taskgate.engine.engine import Engine
from taskgate.engine.task import ModelChoice, Task
from taskgate.errors import NotFoundError, ProviderError
from taskgate.ids import new_id
from taskgate.providers.base import ChatResponse, EmbeddingResponse, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.scripted import ScriptedAdapter
from taskgate.store import open_store
from taskgate.store.base import ExampleRecord, SpanRecord, Store
from taskgate.telemetry import SpanRecorder

MODEL = "openai/gpt-4o-mini"
EMBEDDER = "openai/text-embedding-3-small"


@dataclass(slots=True)
class Wired:
    engine: Engine
    store: Store
    adapter: ScriptedAdapter
    project: str

    async def call(self, name: str, body: dict[str, object]) -> None:
        """A v3 call as its handler makes it: the stored function read through the engine first."""
        stored = await self.engine.functions.current(self.project, name)
        self.adapter.add(ChatResponse(text="ok", usage=Usage(input_tokens=3, output_tokens=1)))
        await self.engine.run(task_from_run_request({"model": MODEL, **body}, self.project, name, stored))

    def prompt(self) -> str:
        """Every message of the last request to the provider, as one text."""
        return "\n".join(str(message["content"]) for message in self.adapter.requests[-1].messages)


@pytest_asyncio.fixture
async def wired(tmp_path: Path) -> AsyncIterator[Wired]:
    store = await open_store(f"sqlite:///{tmp_path / 'services.db'}")
    recorder = SpanRecorder(store, flush_interval=3600)  # not started: only explicit flushes write
    adapter = ScriptedAdapter()
    registry = ProviderRegistry(Settings.from_env({}), adapters={"openai": adapter})
    engine = Engine(store, recorder, registry, MODEL)
    yield Wired(engine, store, adapter, await store.ensure_project("services"))
    await recorder.close()
    await store.close()


# ---- functions: a write through the service is what the next call sees

async def test_a_new_prompt_is_what_the_next_call_uses(wired: Wired) -> None:
    await wired.call("greet", {"input": "x", "instructions": "Say hello."})
    updated = await wired.engine.functions.set_instructions(wired.project, "greet", "Say goodbye.")
    assert updated is not None and updated.revision_number == 2
    await wired.call("greet", {"input": "x"})  # no instructions: the stored prompt
    assert "Say goodbye." in wired.prompt() and "Say hello." not in wired.prompt()
    assert [r.number for r in await wired.engine.functions.revisions(wired.project, "greet")] == [1, 2]


async def test_a_revert_is_what_the_next_call_uses(wired: Wired) -> None:
    await wired.call("greet", {"input": "x", "instructions": "First."})
    await wired.call("greet", {"input": "x", "instructions": "Second."})
    reverted = await wired.engine.functions.revert(wired.project, "greet", 1)
    assert reverted is not None and reverted.definition.instructions == "First."
    await wired.call("greet", {"input": "x"})
    assert "First." in wired.prompt()


async def test_a_deleted_function_is_stored_again_by_its_next_call(wired: Wired) -> None:
    task = Task(wired.project, "gone", input="x", instructions="Answer.", models=[ModelChoice(MODEL)])
    wired.adapter.add(ChatResponse(text="ok"), ChatResponse(text="ok"))
    await wired.engine.run(task)
    assert await wired.engine.functions.delete(wired.project, "gone")
    assert await wired.engine.functions.current(wired.project, "gone") is None
    result = await wired.engine.run(task)
    assert result.script_cached is False  # a new function, not the deleted one remembered
    assert await wired.engine.functions.get(wired.project, "gone") is not None


async def test_writes_to_a_missing_function_say_so(wired: Wired) -> None:
    functions = wired.engine.functions
    assert await functions.set_instructions(wired.project, "none", "x") is None
    assert await functions.revert(wired.project, "none", 1) is None
    assert await functions.delete(wired.project, "none") is False
    assert await functions.get(wired.project, "none") is None


# ---- examples: an example added is in the next selection

async def test_an_example_added_is_shown_to_the_next_call(wired: Wired) -> None:
    await wired.call("classify", {"input": "a purring cat"})  # no examples yet: remembered as empty
    assert "kitten" not in wired.prompt()
    record = await wired.engine.functions.get_or_create(wired.project, "classify")
    example = ExampleRecord(id=new_id(), function_id=record.id, input="a sleepy kitten", output="cats")
    await wired.engine.examples.add(wired.project, record.id, [example])
    await wired.call("classify", {"input": "a purring cat"})
    assert "a sleepy kitten" in wired.prompt()
    assert await wired.engine.examples.delete(wired.project, record.id, example.id)
    assert await wired.engine.examples.page(wired.project, record.id, 10, 0, None) == []


async def test_examples_can_be_added_before_the_function_exists(wired: Wired) -> None:
    record = await wired.engine.functions.get_or_create(wired.project, "seeded")
    assert record.revision_number == 1
    assert (await wired.engine.functions.get_or_create(wired.project, "seeded")).id == record.id
    await wired.engine.examples.add(wired.project, record.id, [
        ExampleRecord(id=new_id(), function_id=record.id, input="2+2", output="4")])
    await wired.call("seeded", {"input": "3+3"})
    assert "2+2" in wired.prompt()


# ---- spans: what was just recorded is readable before any flush

async def test_a_call_span_is_found_before_it_is_written(wired: Wired) -> None:
    wired.adapter.add(ChatResponse(text="ok"))
    result = await wired.engine.run(Task(wired.project, "fresh", input="x", models=[ModelChoice(MODEL)]))
    assert await wired.store.get_span(wired.project, result.span_id) is None  # still waiting for its batch
    found = await wired.engine.spans.find(wired.project, result.span_id)
    assert found is not None and found.status == "ok"
    trace = await wired.engine.spans.get_trace(wired.project, result.trace_id)
    assert [span.id for span in trace] == [result.span_id]
    summaries, total = await wired.engine.spans.list_traces(wired.project, "fresh", 10, 0)
    assert total == 1 and summaries[0].id == result.trace_id


async def test_a_span_deleted_before_it_was_written_stays_deleted(wired: Wired) -> None:
    wired.adapter.add(ChatResponse(text="ok"))
    result = await wired.engine.run(Task(wired.project, "brief", input="x", models=[ModelChoice(MODEL)]))
    assert await wired.engine.spans.delete(wired.project, result.span_id)
    assert await wired.engine.spans.find(wired.project, result.span_id) is None
    assert await wired.engine.spans.get_trace(wired.project, result.trace_id) == []


async def test_a_call_joins_the_trace_of_a_span_not_yet_written(wired: Wired) -> None:
    parent = SpanRecord(id=new_id(), trace_id=new_id(), project_id=wired.project, name="outer")
    wired.engine.spans.record(parent)
    wired.adapter.add(ChatResponse(text="ok"))
    task = Task(wired.project, "inner", input="x", models=[ModelChoice(MODEL)], parent_span_id=parent.id)
    assert (await wired.engine.run(task)).trace_id == parent.trace_id


async def test_a_parent_span_gives_the_trace_once_for_everyone(wired: Wired) -> None:
    spans = wired.engine.spans
    parent = SpanRecord(id=new_id(), trace_id="the-trace", project_id=wired.project, name="outer")
    spans.record(parent)
    assert await spans.trace_for(wired.project, parent.id, "ignored") == "the-trace"
    assert await spans.trace_for(wired.project, None, "given") == "given"
    assert await spans.trace_for(wired.project, None) != await spans.trace_for(wired.project, None)
    with pytest.raises(NotFoundError, match="parent span 'nope' was not found"):
        await spans.trace_for(wired.project, "nope")
    with pytest.raises(NotFoundError, match=r"^span 'nope' was not found"):
        await spans.trace_for(wired.project, "nope", parent_noun="span")


# ---- embeddings: priced, recorded, and placed in the parent's trace

def _embedding(wired: Wired, parent_id: str | None = None) -> EmbeddingTask:
    return EmbeddingTask(project_id=wired.project, model=EMBEDDER, inputs=["a", "bb"], tags={"k": "v"},
                         name="embedder", parent_span_id=parent_id)


async def test_an_embedding_records_a_priced_span_in_its_parents_trace(wired: Wired) -> None:
    parent = SpanRecord(id=new_id(), trace_id="outer-trace", project_id=wired.project, name="outer")
    wired.engine.spans.record(parent)
    result = await wired.engine.embed(_embedding(wired, parent.id))
    assert result.trace_id == "outer-trace" and len(result.response.vectors) == 2
    span = await wired.engine.spans.find(wired.project, result.span_id)
    assert span is not None
    assert (span.type, span.name, span.parent_id, span.trace_id) == ("embedding", "embedder", parent.id,
                                                                     "outer-trace")
    assert span.output == {"count": 2, "dimensions": 2} and span.tags == {"k": "v"}
    assert span.usage == {"input_tokens": 3, "output_tokens": 0, "total_tokens": 3}
    expected = PriceBook().cost("openai", "text-embedding-3-small", Usage(input_tokens=3))
    assert expected is not None and expected > 0
    assert span.cost == result.cost == expected


async def test_an_embedding_with_an_unknown_parent_calls_no_provider(wired: Wired) -> None:
    with pytest.raises(NotFoundError, match="parent span 'missing' was not found"):
        await wired.engine.embed(_embedding(wired, "missing"))
    assert wired.adapter.embeddings == []


class FailingEmbedder(ScriptedAdapter):
    """Embeddings fail upstream, or hang until cancelled."""

    def __init__(self, hang: bool) -> None:
        super().__init__()
        self.hang = hang

    async def embed(self, model: str, inputs: list[str], options: dict[str, object]) -> EmbeddingResponse:
        if self.hang:
            await asyncio.Event().wait()
        raise ProviderError("upstream refused", upstream_status=500)


@pytest.mark.parametrize(("hang", "status"), [(False, "error"), (True, "cancelled")])
async def test_a_failed_or_cancelled_embedding_is_recorded_once(tmp_path: Path, hang: bool, status: str) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'failing.db'}")
    recorder = SpanRecorder(store, flush_interval=3600)
    registry = ProviderRegistry(Settings.from_env({}), adapters={"openai": FailingEmbedder(hang)})
    engine = Engine(store, recorder, registry, MODEL)
    project = await store.ensure_project("failing")
    try:
        embedding = asyncio.ensure_future(engine.embed(EmbeddingTask(
            project_id=project, model=EMBEDDER, inputs=["a"])))
        if hang:
            await asyncio.sleep(0.01)
            embedding.cancel()
        with pytest.raises(asyncio.CancelledError if hang else ProviderError):
            await embedding
        await recorder.flush()
        (summary,), _ = await store.list_traces(project)
        (span,) = await store.get_trace(project, summary.id)
        assert (span.type, span.status, span.models_failed, span.cost) == ("embedding", status, [EMBEDDER], None)
    finally:
        await recorder.close()
        await store.close()
