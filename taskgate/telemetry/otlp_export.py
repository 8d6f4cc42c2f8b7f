"""Every recorded span, also exported over OTLP/HTTP, in batches, on a thread of its own.

The request path only appends the finished span to a deque (`offer`, well under a microsecond):
turning it into an OTel span, encoding the batch and the HTTP request all happen on the
`taskgate-otlp` thread, through the official SDK's `ReadableSpan` and `OTLPSpanExporter`. A dead or
slow collector therefore never slows or fails a call: while an export hangs or retries (the
exporter's own timeout, OTEL_EXPORTER_OTLP_TIMEOUT, bounds each batch), spans wait in the queue, and
once OTEL_BSP_MAX_QUEUE_SIZE wait, new ones are dropped and counted.

Why not the SDK's BatchSpanProcessor: it takes finished SDK spans, so the conversion (about 15 µs a
span) would run on the request path; it logs a warning for every span it drops and counts none that
we could show in /metrics; and its shutdown waits on the exporter. Here the batching honours the same
variables (OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, read in
`taskgate.config`), the counts are `queue_depth`, `dropped` and `exported`, and `close()` gives the
last batches at most CLOSE_TIMEOUT_S before the server exits anyway.

A span is exported when it is recorded finished (it has an end time). A span the span API changes
after that is exported again under the same ids: OTLP spans cannot be updated.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from taskgate.store.base import SpanRecord
from taskgate.telemetry.otlp_spans import readable_span, service_resource

log = logging.getLogger("taskgate.otlp")
CLOSE_TIMEOUT_S = 3.0  # at shutdown, how long the last batches may take before the process exits regardless


class OtlpExport:
    """The queue between the request path and the exporter, and the thread that empties it."""

    def __init__(self, exporter: SpanExporter, *, max_queue_size: int = 2048, max_batch_size: int = 512,
                 schedule_delay_s: float = 5.0) -> None:
        self._exporter = exporter
        self._resource = service_resource()
        self._max_queue = max_queue_size
        self._max_batch = min(max_batch_size, max_queue_size)
        self._delay_s = schedule_delay_s
        self._queue: collections.deque[SpanRecord] = collections.deque()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="taskgate-otlp", daemon=True)
        # Each counter is written by one thread only: `+=` from two would lose counts.
        self._refused = 0  # request path: the queue was full, or the export closed
        self._failed = 0  # export thread: batches the collector did not take
        self._sending = 0  # export thread: spans of the batch being exported
        self.exported = 0

    @property
    def queue_depth(self) -> int:
        """Spans not yet exported: waiting, or in the batch on its way."""
        return len(self._queue) + self._sending

    @property
    def dropped(self) -> int:
        """Spans that never reached the collector: refused by a full queue, or in a failed batch."""
        return self._refused + self._failed

    def start(self) -> None:
        self._thread.start()

    def offer(self, span: SpanRecord) -> None:
        """Queue a finished span for export; never blocks, never raises."""
        if span.end_time is None:
            return
        if len(self._queue) >= self._max_queue or self._closing:
            self._refused += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    async def close(self) -> None:
        """Export what waits, for at most CLOSE_TIMEOUT_S; then stop the exporter (which ends its
        retries) and leave the rest to the daemon thread's end with the process."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("the OTLP collector did not take the last %d spans within %.0f s; they are not exported",
                        self.queue_depth, CLOSE_TIMEOUT_S)
        self._exporter.shutdown()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._export_waiting()
        self._export_waiting()

    def _export_waiting(self) -> None:
        """Export batches until the queue is empty (or below a batch while the server runs and the
        schedule delay has not passed: then wait for more)."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            self._sending = len(batch)
            try:
                spans = [readable_span(span, self._resource) for span in batch]
                result = self._exporter.export(spans)
            except Exception:
                log.exception("exporting %d spans over OTLP failed", len(batch))
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS:
                self.exported += len(batch)
            else:
                self._failed += len(batch)
            self._sending = 0
            if len(self._queue) < self._max_batch and not self._closing:
                return

