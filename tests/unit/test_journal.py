"""The span journal and the recorder on it, over a real SQLite store and real files.

A process that dies is played by closing the journal's file descriptors without its `close()`:
that is what the kernel does at a kill -9 (tests/e2e/test_kill9.py kills a real server)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from taskgate.config import Settings
from taskgate.engine.engine import Engine
from taskgate.engine.task import Task
from taskgate.errors import JournalUnavailableError, StoreUnavailableError
from taskgate.providers.base import ChatResponse, Usage
from taskgate.providers.registry import ProviderRegistry
from taskgate.providers.scripted import ScriptedAdapter
from taskgate.store import SqlStore
from taskgate.store.base import SpanRecord
from taskgate.store.database import Database, normalize_url
from taskgate.store.migrate import upgrade_to_head
from taskgate.telemetry.journal import INTERRUPTED, SpanJournal, decode, encode
from taskgate.telemetry.recorder import MAX_ATTEMPTS, SpanRecorder
from taskgate.telemetry.store_health import StoreHealth

pytestmark = pytest.mark.asyncio(loop_scope="session")


class DownStore(SqlStore):
    """A store that can be taken down: writes and probes fail, as with a stopped Postgres."""

    down = False
    writes = 0

    async def write_spans(self, spans: list[SpanRecord], *, background: bool = False) -> None:
        if self.down:
            raise ConnectionRefusedError("connection refused")
        self.writes += len(spans)
        await super().write_spans(spans, background=background)

    async def ping(self) -> None:
        if self.down:
            raise ConnectionRefusedError("connection refused")
        await super().ping()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DownStore]:
    database = Database(normalize_url(f"sqlite:///{tmp_path / 'spans.db'}"))
    await asyncio.to_thread(upgrade_to_head, database)
    opened = DownStore(database)
    yield opened
    await opened.close()


def _span(project: str, n: int, **fields: object) -> SpanRecord:
    return SpanRecord(id=f"span-{n}", trace_id="trace", project_id=project, name=f"s{n}", **fields)


def _die(journal: SpanJournal) -> None:
    """What the kernel does to a killed process's journal: its files are closed, nothing else."""
    for fd in (journal._fd, journal._lock_fd):
        if fd is not None:
            os.close(fd)


def _recorder(store: DownStore, directory: Path, max_bytes: int = 1 << 30) -> tuple[SpanRecorder, SpanJournal]:
    journal = SpanJournal(directory, max_bytes)
    return SpanRecorder(store, flush_interval=3600, journal=journal,
                        health=StoreHealth(store, fresh_s=0.0, probe_timeout_s=1.0)), journal


async def _count(store: SqlStore, project: str, span_id: str) -> int:
    return len([s for s in await store.get_trace(project, "trace") if s.id == span_id])


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_line_reads_back_as_the_span_it_was() -> None:
    span = _span("p", 1, input={"big": 2**70, "text": "é\n\u2028"}, output=[1.5, None], tags={"a": "b"})
    kind, back = decode(encode("span", span)) or ("", None)
    assert kind == "span" and back is not None
    assert back.input == {"big": 2**70, "text": "é\n\u2028"}  # beyond 64 bits: kept exactly, not refused
    assert (back.output, back.tags, back.name) == (span.output, span.tags, span.name)


@pytest.mark.parametrize("line", [b"", b"{", b'{"k":"span"}\n', b'{"k":"span","s":{"nope":1}}\n', b"\xff\n",
                                  b'{"k":"span","s":{"id":"x","trace_id":"t","project_id":"p","name":"n",'
                                  b'"start_time":"yesterday"}}\n'])
async def test_a_torn_or_foreign_line_is_skipped(line: bytes) -> None:
    assert decode(line) is None


async def test_spans_accepted_before_a_crash_are_stored_once_after_it(store: DownStore, tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    first, journal = _recorder(store, tmp_path / "journal")
    await first.start()
    for n in range(5):
        first.record(_span(project, n))
    await first.flush()  # these five are stored, and their segment deleted
    for n in range(5, 12):
        first.record(_span(project, n))
    first.record(_span(project, 3, output="changed after it was stored"))
    _die(journal)  # before the next batch: only the journal has spans 5-11 and the change to 3

    second, journal2 = _recorder(store, tmp_path / "journal")
    await second.start()
    await second.flush()
    for n in range(12):
        assert await _count(store, project, f"span-{n}") == 1
    assert (await store.get_span(project, "span-3")).output == "changed after it was stored"  # type: ignore[union-attr]
    assert store.writes == 5 + 8  # each journaled span written once more, none twice
    assert journal2.unstored() == 0
    await second.close()
    assert list((tmp_path / "journal").glob("slot-*/spans-*")) == []


async def test_a_stream_cut_by_a_crash_is_stored_as_interrupted(store: DownStore, tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, journal = _recorder(store, tmp_path / "journal")
    await recorder.start()
    recorder.open(_span(project, 1, status="error"))
    recorder.open(_span(project, 2, status="error"))
    recorder.record(_span(project, 2, output="finished"))
    await recorder.flush()
    await recorder.flush()  # a sealed segment with an open span is kept
    assert await store.get_span(project, "span-1") is None  # an open span is never written while it runs
    _die(journal)

    after, _ = _recorder(store, tmp_path / "journal")
    await after.start()
    await after.flush()
    cut = await store.get_span(project, "span-1")
    assert cut is not None and (cut.status, cut.error) == ("error", INTERRUPTED)
    done = await store.get_span(project, "span-2")
    assert done is not None and (done.status, done.output) == ("ok", "finished")
    await after.close()


async def test_a_torn_last_record_costs_only_itself(store: DownStore, tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, journal = _recorder(store, tmp_path / "journal")
    await recorder.start()
    recorder.record(_span(project, 1))
    recorder.record(_span(project, 2))
    _die(journal)
    segment = next((tmp_path / "journal").glob("slot-*/spans-*"))
    segment.write_bytes(segment.read_bytes()[:-7])  # the disk filled mid-write of span 2

    after, _ = _recorder(store, tmp_path / "journal")
    await after.start()
    await after.flush()
    assert await _count(store, project, "span-1") == 1
    assert await store.get_span(project, "span-2") is None
    await after.close()


async def test_a_store_that_is_down_keeps_every_span_until_it_returns(store: DownStore, tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, _ = _recorder(store, tmp_path / "journal")
    await recorder.start()
    store.down = True
    for n in range(3):
        recorder.record(_span(project, n))
    for _ in range(MAX_ATTEMPTS + 2):  # more failures than a span without a journal may have
        await recorder.flush()
    assert recorder.dropped_spans == 0 and not await recorder.health.healthy()
    store.down = False
    await recorder.flush()
    assert [await _count(store, project, f"span-{n}") for n in range(3)] == [1, 1, 1]
    assert await recorder.health.healthy()
    await recorder.close()


async def test_a_store_that_refuses_a_span_while_up_drops_it_in_the_end(store: DownStore, tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, journal = _recorder(store, tmp_path / "journal")
    await recorder.start()
    recorder.record(_span(project, 1, input="\x00 a NUL Postgres would refuse"))  # SQLite takes it: fake refusal

    async def refuse(spans: list[SpanRecord], *, background: bool = False) -> None:
        raise ValueError("cannot encode")

    store.write_spans = refuse  # type: ignore[method-assign]
    for _ in range(MAX_ATTEMPTS):
        await recorder.flush()
    assert recorder.dropped_spans == 1 and journal.unstored() == 0
    await recorder.close()


async def test_close_with_the_store_down_leaves_the_spans_for_the_next_start(store: DownStore,
                                                                             tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, _ = _recorder(store, tmp_path / "journal")
    await recorder.start()
    recorder.record(_span(project, 1))
    store.down = True
    await asyncio.wait_for(recorder.close(deadline_s=2.0), 5)
    store.down = False
    after, _ = _recorder(store, tmp_path / "journal")
    await after.start()
    await after.flush()
    assert await _count(store, project, "span-1") == 1
    await after.close()


async def test_a_full_journal_refuses_new_calls_until_the_store_takes_its_spans(store: DownStore,
                                                                                tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, journal = _recorder(store, tmp_path / "journal", max_bytes=2000)
    await recorder.start()
    store.down = True
    n = 0
    while journal.accepting():
        recorder.admit()
        recorder.record(_span(project, n, input="x" * 200))
        n += 1
    with pytest.raises(JournalUnavailableError) as refused:
        recorder.admit()
    assert refused.value.status == 503 and refused.value.headers["Retry-After"]
    store.down = False
    await recorder.flush()
    await recorder.flush()  # the sealed segments are deleted once stored
    recorder.admit()
    assert [await _count(store, project, f"span-{i}") for i in range(n)] == [1] * n
    await recorder.close()


async def test_processes_sharing_a_data_directory_take_slots_and_adopt_a_dead_ones(store: DownStore,
                                                                                 tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    directory = tmp_path / "journal"
    one, journal_one = _recorder(store, directory)
    two, journal_two = _recorder(store, directory)
    await one.start()
    await two.start()
    assert journal_one.slot != journal_two.slot
    one.record(_span(project, 1))
    two.record(_span(project, 2))
    _die(journal_one)
    three, journal_three = _recorder(store, directory)
    await three.start()  # takes the dead process's slot back, and adopts nothing of the live one's
    assert journal_three.slot == journal_one.slot
    await three.flush()
    assert await _count(store, project, "span-1") == 1
    assert await store.get_span(project, "span-2") is None
    await two.close()
    await three.close()
    assert await _count(store, project, "span-2") == 1


async def test_a_span_api_write_with_the_store_down_is_a_503_and_keeps_nothing(store: DownStore,
                                                                              tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, _ = _recorder(store, tmp_path / "journal")
    await recorder.start()
    store.down = True
    with pytest.raises(StoreUnavailableError) as refused:
        await recorder.write_through(_span(project, 1))
    assert refused.value.status == 503 and refused.value.body()["error"]["code"] == "store_unavailable"
    store.down = False
    await recorder.flush()
    assert await store.get_span(project, "span-1") is None  # refused means not stored, now or later
    await recorder.write_through(_span(project, 1))
    assert await _count(store, project, "span-1") == 1
    await recorder.close()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to make a write fail with ENOSPC")
async def test_a_refused_append_is_counted_and_the_next_one_starts_a_fresh_segment(store: DownStore,
                                                                                   tmp_path: Path) -> None:
    project = await store.ensure_project("journal")
    recorder, journal = _recorder(store, tmp_path / "journal")
    await recorder.start()
    _fill_disk(journal)
    recorder.record(_span(project, 1))  # not journaled, but kept for the batch: never lost while we run
    assert journal.failed_appends == 1
    recorder.record(_span(project, 3))  # the disk has room again: a fresh segment, after the torn one
    assert journal.failed_appends == 1 and journal.unstored() == 1
    _fill_disk(journal)
    with pytest.raises(JournalUnavailableError):
        recorder.open(_span(project, 2))  # a stream whose span cannot be journaled does not start
    assert journal.failed_appends == 2
    await recorder.flush()
    assert await _count(store, project, "span-1") == 1 and await _count(store, project, "span-3") == 1
    await recorder.close()


def _fill_disk(journal: SpanJournal) -> None:
    """Point the active segment at /dev/full: its next write fails with ENOSPC, as on a full disk."""
    assert journal._fd is not None
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to make a write fail with ENOSPC")
async def test_a_call_whose_span_the_full_disk_refuses_is_not_answered_but_recorded(store: DownStore,
                                                                                    tmp_path: Path) -> None:
    """The disk fills while the provider answers: the call is a 503, and its span says so."""
    project = await store.ensure_project("journal")
    recorder, journal = _recorder(store, tmp_path / "journal")
    await recorder.start()
    provider = ScriptedAdapter(delay_s=0.3)
    provider.add(ChatResponse(text="an answer nobody may get", usage=Usage(input_tokens=3, output_tokens=4)))
    registry = ProviderRegistry(Settings.from_env({}), adapters={"openai": provider})
    engine = Engine(store, recorder, registry, "openai/gpt-4o-mini")
    call = asyncio.create_task(engine.run(Task(project_id=project, function_name="full", input="hi")))
    await asyncio.sleep(0.1)  # admitted, and waiting for the provider
    _fill_disk(journal)
    with pytest.raises(JournalUnavailableError) as refused:
        await call
    assert refused.value.status == 503
    await recorder.flush()
    spans = await store.get_trace(project, (await store.list_traces(project))[0][0].id)
    assert [(span.status, span.error) for span in spans] == [("error", refused.value.detail)]
    assert spans[0].usage["input_tokens"] == 3  # what the provider was paid for is still counted
    await recorder.close()
