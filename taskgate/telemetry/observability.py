"""What leaves the process for the operator's own tools: Prometheus metrics and OTLP export, as the
settings ask, wired to the span recorder, the router and the access log (`GET /metrics` is served
by `taskgate.api.metrics`).

Both are optional: with TASKGATE_METRICS=0 nothing is metered and /metrics does not exist; with no
OTLP endpoint nothing is exported. Either way the request path pays only for what is on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from taskgate.config import Settings
from taskgate.store.base import SpanRecord
from taskgate.telemetry.metrics import DRAIN_INTERVAL_S, Metrics
from taskgate.telemetry.otlp_export import OtlpExport
from taskgate.telemetry.periodic import every
from taskgate.telemetry.recorder import SpanHook, SpanRecorder


@dataclass(slots=True)
class Observability:
    metrics: Metrics | None
    export: OtlpExport | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Observability:
        metrics = Metrics(settings.prometheus_multiproc_dir) if settings.metrics_enabled else None
        export = None
        if settings.otlp_traces_endpoint is not None:
            # Imported only when exporting: the exporter pulls in requests and protobuf.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            export = OtlpExport(OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint),
                                max_queue_size=settings.otlp_max_queue_size,
                                max_batch_size=settings.otlp_max_export_batch_size,
                                schedule_delay_s=settings.otlp_schedule_delay_ms / 1000)
        return cls(metrics, export)

    def on_record(self) -> SpanHook | None:
        """The recorder's hook for the spans calls record: metered and exported."""
        metrics, export = self.metrics, self.export
        if metrics is not None and export is not None:
            def both(span: SpanRecord) -> None:
                metrics.span(span)
                export.offer(span)
            return both
        if metrics is not None:
            return metrics.span
        return export.offer if export is not None else None

    def on_write_through(self) -> SpanHook | None:
        """The recorder's hook for spans the span API stores: exported, not metered (no call of ours)."""
        return self.export.offer if self.export is not None else None

    def watch(self, recorder: SpanRecorder) -> None:
        """The queues and drop counts /metrics shows beside the counters."""
        if self.metrics is None:
            return
        self.metrics.watch_queue("taskgate_span_queue_depth", "Spans recorded and not yet written to the store",
                                 lambda: recorder.queue_depth)
        self.metrics.watch_total("taskgate_spans_dropped", "Spans given up after failed writes, or recorded after "
                                 "shutdown", lambda: recorder.dropped_spans)
        if self.export is not None:
            export = self.export
            self.metrics.watch_queue("taskgate_otlp_queue_depth", "Spans waiting for OTLP export",
                                     lambda: export.queue_depth)
            self.metrics.watch_total("taskgate_otlp_spans_dropped", "Spans not exported: the queue was full or the "
                                     "collector refused their batch", lambda: export.dropped)
            self.metrics.watch_total("taskgate_otlp_spans_exported", "Spans the OTLP collector accepted",
                                     lambda: export.exported)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The export thread and the metrics' drain while the server runs; at the end the last drain
        and the last export (bounded in time)."""
        if self.export is not None:
            self.export.start()
        try:
            if self.metrics is not None:
                async with every(DRAIN_INTERVAL_S, _async(self.metrics)):
                    yield
            else:
                yield
        finally:
            if self.metrics is not None:
                self.metrics.close()
            if self.export is not None:
                await self.export.close()


def _async(metrics: Metrics) -> Callable[[], Awaitable[None]]:
    """The drain as the chore `every` runs."""
    async def drain() -> None:
        metrics.drain()
    return drain
