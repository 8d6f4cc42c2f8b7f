"""The span recorder over a real SQLite store. Stores that count, fail or stall are real SqlStore
subclasses: the recorder is the code under test, not the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from taskgate.store import SqlStore
from taskgate.store.base import SpanRecord
from taskgate.store.database import Database, normalize_url
from taskgate.store.migrate import upgrade_to_head
from taskgate.telemetry import SpanRecorder
from taskgate.telemetry.recorder import BACKLOG_BATCHES, MAX_ATTEMPTS, MAX_PEER_WAIT_S, peer_wait

pytestmark = pytest.mark.asyncio(loop_scope="session")


class CountingStore(SqlStore):
    """Remembers the size of every batch written."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.batches: list[int] = []
        self.background: list[bool] = []

    async def write_spans(self, spans: list[SpanRecord], *, background: bool = False) -> None:
        self.batches.append(len(spans))
        self.background.append(background)
        await super().write_spans(spans, background=background)


class FailingStore(CountingStore):
    """Fails every write while `failing` is set, like a database that is down."""

    failing = True

    async def write_spans(self, spans: list[SpanRecord], *, background: bool = False) -> None:
        if self.failing:
            raise RuntimeError("disk on fire")
        await super().write_spans(spans, background=background)


class StallingStore(CountingStore):
    """The first write hangs until cancelled, like a write caught by shutdown."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.stalled = asyncio.Event()

    async def write_spans(self, spans: list[SpanRecord], *, background: bool = False) -> None:
        if not self.stalled.is_set():
            self.stalled.set()
            await asyncio.Event().wait()
        await super().write_spans(spans, background=background)


StoreFactory = Callable[[type[CountingStore]], Awaitable[CountingStore]]


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    opened: list[CountingStore] = []

    async def _make(kind: type[CountingStore]) -> CountingStore:
        database = Database(normalize_url(f"sqlite:///{tmp_path / f'spans{len(opened)}.db'}"))
        await asyncio.to_thread(upgrade_to_head, database)
        store = kind(database)
        opened.append(store)
        return store

    yield _make
    for store in opened:
        await store.close()


async def _project(store: SqlStore) -> str:
    return await store.ensure_project("recorder")


def _span(project: str, n: int, **fields: object) -> SpanRecord:
    return SpanRecord(id=f"span-{n}", trace_id=f"trace-{n % 3}", project_id=project, name=f"s{n}", **fields)


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll until `check` holds; the generous deadline only guards against a hang."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_flush_writes_in_batches_and_collapses_repeats(make_store: StoreFactory) -> None:
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, max_batch=500)
    for n in range(1200):
        recorder.record(_span(project, n))
    recorder.record(_span(project, 7, output="final", status="error"))  # same id again: replaces
    await recorder.flush()
    assert store.batches == [500, 500, 200]
    assert store.background == [True, True, True]  # no request waits for a batch
    stored = await store.get_span(project, "span-7")
    assert stored is not None and (stored.output, stored.status) == ("final", "error")
    traces, _ = await store.list_traces(project)
    assert sum(trace.span_count for trace in traces) == 1200
    await recorder.flush()
    assert store.batches == [500, 500, 200]  # nothing pending: no empty writes


async def test_spans_recorded_during_a_flush_wait_for_the_next(make_store: StoreFactory) -> None:
    """Requests keep recording while a batch is written; chasing them would make a train of tiny writes."""
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, max_batch=500)
    write = store.write_spans
    arriving = iter(range(100, 103))

    async def write_while_requests_arrive(spans: list[SpanRecord], *, background: bool = False) -> None:
        if (n := next(arriving, None)) is not None:
            recorder.record(_span(project, n))
        await write(spans, background=background)

    store.write_spans = write_while_requests_arrive  # type: ignore[method-assign]
    for n in range(20):
        recorder.record(_span(project, n))
    await recorder.flush()
    assert store.batches == [20]
    await recorder.flush()
    assert store.batches == [20, 1]
    assert await store.get_span(project, "span-100") is not None


async def test_a_backlog_is_written_at_normal_priority(make_store: StoreFactory) -> None:
    """Low priority is for keeping out of the requests' way, not for falling ever further behind."""
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, max_batch=10)
    for n in range(10 * (BACKLOG_BATCHES + 2)):
        recorder.record(_span(project, n))
    await recorder.flush()
    assert store.background == [False, False, True, True, True, True]  # until fewer than 4 batches wait
    for n in range(5):
        recorder.record(_span(project, 100 + n))
    await recorder.close()
    assert store.background[-1] is False  # at shutdown nothing is served any more: write at full speed


async def test_pending_spans_are_found_before_the_flush(make_store: StoreFactory) -> None:
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store)
    recorder.record(_span(project, 1, output="draft"))
    recorder.record(_span(project, 1, output="done"))
    pending = await recorder.find_span(project, "span-1")
    assert pending is not None and pending.output == "done"
    assert await store.get_span(project, "span-1") is None
    assert await recorder.find_span("another-project", "span-1") is None
    await recorder.flush()
    stored = await recorder.find_span(project, "span-1")
    assert stored is not None and stored.output == "done" and store.batches == [1]


async def test_a_miss_waits_for_a_replica_sharing_the_store(make_store: StoreFactory) -> None:
    """Replica A has accepted a span but not written it; replica B, asked for it by id, must not
    answer 'not found' while A's batch is still on its way, nor wait longer than it takes."""
    store = await make_store(CountingStore)
    project = await _project(store)
    replica_a = SpanRecorder(store, flush_interval=0.3)
    replica_b = SpanRecorder(store, flush_interval=0.3, peer_wait_s=peer_wait(0.3, shared_store=True))
    loop = asyncio.get_running_loop()
    await replica_a.start()
    try:
        replica_a.record(_span(project, 1, output="from a"))
        assert await replica_b.find_span(project, "span-1", wait_for_peers=False) is None
        started = loop.time()
        found = await replica_b.find_span(project, "span-1")
        assert found is not None and found.output == "from a"
        assert loop.time() - started < 0.3 + 0.15  # found at the first poll after A's write
        started = loop.time()
        assert await replica_b.find_span(project, "span-1") is not None
        assert loop.time() - started < 0.05  # stored: no waiting at all
        started = loop.time()
        assert await replica_b.find_span(project, "span-404") is None
        assert loop.time() - started >= 0.5  # a true miss is only declared after the whole wait
    finally:
        await replica_a.close()


async def test_write_through_stores_the_span_before_returning(make_store: StoreFactory) -> None:
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=3600)
    await recorder.write_through(_span(project, 1, output="now"))
    stored = await store.get_span(project, "span-1")
    assert stored is not None and stored.output == "now" and store.batches == [1]
    assert store.background == [False]  # the caller waits for it
    await recorder.flush()
    assert store.batches == [1]  # nothing left pending to write twice


async def test_write_through_on_a_failing_store_raises_and_keeps_nothing(make_store: StoreFactory) -> None:
    """The span API answers with the id only once stored: a failed write raises, and the span is not
    left pending for a later batch to store behind the caller's back (the caller was told it failed)."""
    store = await make_store(FailingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=3600)
    with pytest.raises(RuntimeError, match="disk on fire"):
        await recorder.write_through(_span(project, 1, output="refused"))
    assert recorder.failed_writes == 1
    assert await recorder.find_span(project, "span-1") is None
    store.failing = False
    await recorder.flush()
    assert await store.get_span(project, "span-1") is None


async def test_a_failed_write_through_puts_back_the_version_waiting_for_the_batch(make_store: StoreFactory) -> None:
    """A call's span recorded for the batch, then updated through the span API while the store is
    down: the update fails, and the recorded version is still written by the batch."""
    store = await make_store(FailingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=3600)
    recorder.record(_span(project, 1, output="recorded"))
    with pytest.raises(RuntimeError):
        await recorder.write_through(_span(project, 1, output="updated"))
    pending = await recorder.find_span(project, "span-1")
    assert pending is not None and pending.output == "recorded"
    store.failing = False
    await recorder.flush()
    stored = await store.get_span(project, "span-1")
    assert stored is not None and stored.output == "recorded"


async def test_without_replicas_a_miss_is_reported_at_once(make_store: StoreFactory) -> None:
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=0.3, peer_wait_s=peer_wait(0.3, shared_store=False))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await recorder.find_span(project, "span-404") is None
    assert loop.time() - started < 0.05
    assert peer_wait(3600, shared_store=True) == MAX_PEER_WAIT_S  # a long interval never means a long wait


async def test_background_task_flushes_on_its_own(make_store: StoreFactory) -> None:
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=0.01)
    await recorder.start()
    recorder.record(_span(project, 1))

    async def written() -> bool:
        return await store.get_span(project, "span-1") is not None

    await _eventually(written)
    await recorder.close()


async def test_a_full_batch_wakes_the_writer(make_store: StoreFactory) -> None:
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=3600, max_batch=5)
    await recorder.start()
    for n in range(5):
        recorder.record(_span(project, n))

    async def written() -> bool:
        return store.batches == [5]

    await _eventually(written)
    await recorder.close()


async def test_close_flushes_everything_accepted(make_store: StoreFactory,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    store = await make_store(CountingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=3600, max_batch=4)
    await recorder.start()
    for n in range(10):
        recorder.record(_span(project, n))
    await recorder.close()
    for n in range(10):
        assert await store.get_span(project, f"span-{n}") is not None
    with caplog.at_level(logging.WARNING, logger="taskgate.spans"):
        recorder.record(_span(project, 99))
    assert recorder.dropped_spans == 1 and "after the recorder closed" in caplog.text
    assert await store.get_span(project, "span-99") is None


async def test_failing_writes_are_counted_logged_and_retried(make_store: StoreFactory,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    store = await make_store(FailingStore)
    project = await _project(store)
    recorder = SpanRecorder(store)
    recorder.record(_span(project, 1))
    with caplog.at_level(logging.WARNING, logger="taskgate.spans"):
        await recorder.flush()  # must not raise
    assert recorder.failed_writes == 1
    assert any(r.name == "taskgate.spans" and "failed" in r.getMessage() for r in caplog.records)
    assert await recorder.find_span(project, "span-1") is not None  # kept for the retry

    recorder.record(_span(project, 1, output="newer"))
    assert isinstance(store, FailingStore)
    store.failing = False
    await recorder.flush()
    stored = await store.get_span(project, "span-1")
    assert stored is not None and stored.output == "newer"
    assert recorder.failed_writes == 1 and recorder.dropped_spans == 0


async def test_a_store_that_stays_down_cannot_hang_close(make_store: StoreFactory) -> None:
    store = await make_store(FailingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, max_batch=2)
    for n in range(3):
        recorder.record(_span(project, n))
    await recorder.close()
    assert recorder.dropped_spans == 3
    assert MAX_ATTEMPTS <= recorder.failed_writes <= 3 * MAX_ATTEMPTS  # each span tried MAX_ATTEMPTS times


async def test_a_write_cancelled_by_close_is_written_again(make_store: StoreFactory) -> None:
    store = await make_store(StallingStore)
    assert isinstance(store, StallingStore)
    project = await _project(store)
    recorder = SpanRecorder(store, flush_interval=0.01)
    await recorder.start()
    recorder.record(_span(project, 1))
    await store.stalled.wait()
    assert await recorder.find_span(project, "span-1") is not None  # in flight, still visible
    await recorder.close()
    assert await store.get_span(project, "span-1") is not None


async def test_record_never_raises(make_store: StoreFactory, caplog: pytest.LogCaptureFixture) -> None:
    store = await make_store(CountingStore)
    recorder = SpanRecorder(store)
    with caplog.at_level(logging.ERROR, logger="taskgate.spans"):
        recorder.record(object())  # type: ignore[arg-type]
    assert "could not accept" in caplog.text
    await recorder.close()
    assert store.batches == []
