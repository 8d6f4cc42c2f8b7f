"""Capturing raw provider exchanges: off without a call's mark, bounded in size and in memory, and
never failing a call when the store does."""

from __future__ import annotations

from typing import Any

import pytest

from taskgate.providers.wire_capture import MAX_CAPTURE_BYTES, CaptureScope, Exchange, begin, capturing
from taskgate.store.base import GenerationRecord
from taskgate.telemetry import generations
from taskgate.telemetry.generations import GenerationRecorder, bounded_text, generation_record

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.written: list[GenerationRecord] = []

    async def write_generations(self, records: list[GenerationRecord]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.written.extend(records)


def _exchange(recorder: GenerationRecorder, body: bytes = b'{"model": "m"}') -> Exchange:
    with capturing(recorder.scope("p", "s", "t")):
        exchange = begin("openai", "/chat/completions", {"model": "m"}, body, stream=False)
    assert exchange is not None
    return exchange


async def test_nothing_is_captured_without_a_mark() -> None:
    assert begin("openai", "/x", {}, b"{}", stream=False) is None
    with capturing(None):
        assert begin("openai", "/x", {}, b"{}", stream=False) is None


async def test_an_exchange_is_recorded_once_with_its_call() -> None:
    store = FakeStore()
    recorder = GenerationRecorder(store)  # type: ignore[arg-type]
    exchange = _exchange(recorder)
    exchange.finish(status=200, response=b'{"ok": true}')
    exchange.finish(status=500, error="late")  # a second finish changes nothing
    await recorder.flush()
    [record] = store.written
    assert (record.project_id, record.span_id, record.trace_id, record.model) == ("p", "s", "t", "m")
    assert (record.status_code, record.response, record.error, record.response_truncated) == (
        200, '{"ok": true}', None, False)


async def test_bodies_are_cut_and_marked() -> None:
    text, cut = bounded_text(("é" * MAX_CAPTURE_BYTES).encode())
    assert cut and len(text.encode()) <= MAX_CAPTURE_BYTES
    recorder = GenerationRecorder(FakeStore())  # type: ignore[arg-type]
    exchange = _exchange(recorder, b"x" * (MAX_CAPTURE_BYTES + 1))
    exchange.stream = True
    for _ in range(3):
        exchange.add_chunk(b"y" * (MAX_CAPTURE_BYTES // 2))
    exchange.finish(status=200)
    record = generation_record(exchange)
    assert record.request_truncated and record.response_truncated
    assert exchange.chunks_size == MAX_CAPTURE_BYTES and record.response == "y" * MAX_CAPTURE_BYTES


async def test_waiting_exchanges_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(generations, "MAX_PENDING", 2)
    recorder = GenerationRecorder(FakeStore())  # type: ignore[arg-type]
    for _ in range(3):
        _exchange(recorder).finish(status=200, response=b"{}")
    assert recorder.dropped == 1
    monkeypatch.setattr(generations, "MAX_PENDING_BYTES", 10)
    big = GenerationRecorder(FakeStore())  # type: ignore[arg-type]
    _exchange(big, b"z" * 11).finish(status=200)
    assert big.dropped == 1


async def test_a_failing_store_drops_the_batch_without_raising() -> None:
    store = FakeStore(fail=True)
    recorder = GenerationRecorder(store)  # type: ignore[arg-type]
    _exchange(recorder).finish(status=200, response=b"{}")
    await recorder.flush()
    assert recorder.dropped == 1
    store.fail = False
    await recorder.flush()
    assert store.written == []


async def test_scope_is_frozen() -> None:
    scope = CaptureScope("p", "s", "t", lambda exchange: None)
    with pytest.raises(AttributeError):
        scope.span_id = "other"  # type: ignore[misc]


async def test_a_readers_flush_waits_for_the_batch_already_being_written() -> None:
    """A periodic flush that has taken the waiting exchanges and is still writing them: a reader's
    flush (before a listing) must return only once they are in the store, or the reader misses them."""
    import asyncio

    class SlowStore(FakeStore):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def write_generations(self, records: list[GenerationRecord]) -> None:
            await self.release.wait()
            await super().write_generations(records)

    store = SlowStore()
    recorder = GenerationRecorder(store)  # type: ignore[arg-type]
    _exchange(recorder).finish(status=200, response=b"{}")
    periodic = asyncio.create_task(recorder.flush())
    await asyncio.sleep(0)  # it has taken the exchange and waits on the store
    reader = asyncio.create_task(recorder.flush())
    await asyncio.sleep(0.01)
    assert not reader.done()
    store.release.set()
    await reader
    assert len(store.written) == 1
    await periodic
