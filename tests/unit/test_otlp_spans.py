"""Taskgate spans as OTel spans: the id mapping, the attributes, and the export thread's queue,
through the SDK's own in-memory exporter."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskgate.ids import new_id
from taskgate.store.base import SpanRecord
from taskgate.telemetry.otlp_export import OtlpExport
from taskgate.telemetry.otlp_spans import readable_span, service_resource, span_id_of, trace_id_of

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def span(**fields: object) -> SpanRecord:
    values: dict[str, object] = {"id": new_id(), "trace_id": new_id(), "project_id": "p", "name": "fn",
                                 "start_time": NOW, "end_time": NOW + timedelta(milliseconds=250)}
    values.update(fields)
    return SpanRecord(**values)  # type: ignore[arg-type]


def test_a_uuid_keeps_its_bits() -> None:
    taskgate_id = new_id()
    assert trace_id_of(taskgate_id) == uuid.UUID(taskgate_id).int
    assert f"{trace_id_of(taskgate_id):032x}" == taskgate_id.replace("-", "")
    assert span_id_of(taskgate_id) == uuid.UUID(taskgate_id).int & (2**64 - 1)


@pytest.mark.parametrize("odd", ["my-span", "span 1", "ü" * 200, "\ud800", "x" * 255, "{" + str(uuid.uuid4()) + "}",
                                 "00000000-0000-0000-0000-000000000000", uuid.uuid4().hex])
def test_other_ids_are_hashed_deterministically_and_never_zero(odd: str) -> None:
    assert trace_id_of(odd) == trace_id_of(odd) and 0 < trace_id_of(odd) < 2**128
    assert span_id_of(odd) == span_id_of(odd) and 0 < span_id_of(odd) < 2**64
    if odd != "00000000-0000-0000-0000-000000000000":
        digest = hashlib.sha256(("taskgate-span:" + odd).encode("utf-8", "surrogatepass")).digest()
        assert span_id_of(odd) == int.from_bytes(digest[:8], "big")


def test_ids_of_spans_made_in_the_same_millisecond_differ() -> None:
    ids = {span_id_of(new_id()) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_a_call_span_becomes_a_client_span_with_genai_attributes() -> None:
    parent = new_id()
    record = span(parent_id=parent, model_chain=["openai/flaky", "anthropic/claude-haiku-4-5"],
                  model_used="anthropic/claude-haiku-4-5", models_failed=["openai/flaky: 500"], attempts=2,
                  usage={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13}, cost=0.25,
                  function_name="fn", meta={"cached": True}, input="secret input", output="secret output")
    otel = readable_span(record, service_resource())
    assert otel.context is not None and otel.parent is not None
    assert otel.parent.span_id == span_id_of(parent) and otel.parent.trace_id == otel.context.trace_id
    assert otel.kind is SpanKind.CLIENT and otel.status.status_code is StatusCode.UNSET
    assert otel.end_time - otel.start_time == 250_000_000  # type: ignore[operator]
    attributes = dict(otel.attributes or {})
    assert attributes["gen_ai.system"] == "anthropic" and attributes["gen_ai.request.model"] == "claude-haiku-4-5"
    assert attributes["gen_ai.usage.input_tokens"] == 10 and attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["taskgate.cost.usd"] == 0.25 and attributes["taskgate.cached"] is True
    assert attributes["taskgate.models_failed"] == ["openai/flaky: 500"] and attributes["taskgate.attempts"] == 2
    assert attributes["taskgate.model_chain"] == ["openai/flaky", "anthropic/claude-haiku-4-5"]
    assert "secret" not in repr(attributes)


def test_a_span_with_no_model_an_error_or_no_start() -> None:
    otel = readable_span(span(status="error", error="x" * 5000, start_time=None, cost=None), service_resource())
    assert otel.kind is SpanKind.INTERNAL
    assert otel.status.status_code is StatusCode.ERROR and len(otel.status.description or "") == 1024
    assert otel.start_time == otel.end_time
    attributes = dict(otel.attributes or {})
    assert "gen_ai.system" not in attributes and "taskgate.cost.usd" not in attributes
    cancelled = readable_span(span(status="cancelled"), service_resource())
    assert cancelled.status.status_code is StatusCode.UNSET
    assert dict(cancelled.attributes or {})["taskgate.cancelled"] is True


@pytest.mark.asyncio(loop_scope="session")
async def test_spans_are_exported_in_batches_and_a_full_queue_drops_and_counts() -> None:
    memory = InMemorySpanExporter()
    export = OtlpExport(memory, max_queue_size=4, max_batch_size=2, schedule_delay_s=60)
    export.offer(span(end_time=None))  # unfinished: never exported
    for _ in range(6):
        export.offer(span())
    assert export.queue_depth == 4 and export.dropped == 2  # not started: nothing has left the queue
    export.start()
    await export.close()
    assert export.exported == 4 and len(memory.get_finished_spans()) == 4 and export.queue_depth == 0
    export.offer(span())
    assert export.dropped == 3  # closed: refused and counted


class StuckExporter(SpanExporter):
    """A collector that never answers: export blocks until shutdown."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.released.wait(30)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.released.set()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_stuck_export_fills_the_queue_and_close_returns_in_bounded_time() -> None:
    stuck = StuckExporter()
    export = OtlpExport(stuck, max_queue_size=3, max_batch_size=1, schedule_delay_s=0.01)
    export.start()
    export.offer(span())
    assert await asyncio.to_thread(stuck.entered.wait, 5)
    for _ in range(10):
        export.offer(span())
    assert export.queue_depth == 4 and export.dropped == 7  # 3 waiting, 1 on its way
    loop = asyncio.get_running_loop()
    started = loop.time()
    await export.close()
    assert loop.time() - started < 5
    assert export.exported == 0
