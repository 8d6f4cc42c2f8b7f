"""Raw provider exchanges recorded off the request path, in batches (v3 generations).

`record()` only appends the exchange to a list: the request path pays nothing more. `flush()`
(run every span-flush interval by the app, and at shutdown) turns the waiting exchanges into rows
and writes them in one transaction on the store's low-priority thread. Each body is kept up to
MAX_CAPTURE_BYTES and marked truncated beyond it. These are debugging records, not accounts: if
more than MAX_PENDING, or MAX_PENDING_BYTES of bodies, wait (the store is down or slow, or the
bodies are huge), new ones are dropped and counted, and a
failed batch is logged and dropped rather than retried, so they can never hold memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from taskgate.ids import new_id
from taskgate.providers.wire_capture import MAX_CAPTURE_BYTES, CaptureScope, Exchange
from taskgate.store.base import GenerationRecord, Store

log = logging.getLogger("taskgate.generations")
MAX_PENDING = 5000
MAX_PENDING_BYTES = 64 * 1024 * 1024  # bodies are held whole until their batch cuts them
BATCH = 200


def bounded_text(raw: bytes) -> tuple[str, bool]:
    """`raw` as text, cut at MAX_CAPTURE_BYTES (mid-character bytes dropped), and whether it was cut."""
    if len(raw) <= MAX_CAPTURE_BYTES:
        return raw.decode("utf-8", "replace"), False
    return raw[:MAX_CAPTURE_BYTES].decode("utf-8", "ignore"), True


def _response(exchange: Exchange) -> tuple[str | None, bool]:
    if exchange.stream and exchange.response is None:
        text, cut = bounded_text(b"".join(exchange.chunks))
        return text, cut or exchange.chunks_cut
    if exchange.response is None:
        return None, False
    return bounded_text(exchange.response)


def generation_record(exchange: Exchange) -> GenerationRecord:
    request, request_cut = bounded_text(exchange.request)
    response, response_cut = _response(exchange)
    scope = exchange.scope
    return GenerationRecord(
        id=new_id(), project_id=scope.project_id, span_id=scope.span_id, trace_id=scope.trace_id,
        provider=exchange.provider, model=exchange.model, path=exchange.path, stream=exchange.stream,
        status_code=exchange.status, error=exchange.error, request=request, response=response,
        request_truncated=request_cut, response_truncated=response_cut, duration_ms=exchange.duration_ms,
        created_at=datetime.fromtimestamp(exchange.started_at, UTC),
    )


class GenerationRecorder:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[Exchange] = []
        self._pending_bytes = 0
        self._flushing = asyncio.Lock()
        self.dropped = 0

    def scope(self, project_id: str, span_id: str, trace_id: str) -> CaptureScope:
        """The mark under which a call's upstream requests are captured into this recorder."""
        return CaptureScope(project_id, span_id, trace_id, self.record)

    def record(self, exchange: Exchange) -> None:
        size = len(exchange.request) + len(exchange.response or b"") + exchange.chunks_size
        if len(self._pending) >= MAX_PENDING or self._pending_bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1
            return
        self._pending.append(exchange)
        self._pending_bytes += size

    async def flush(self) -> None:
        """Write what waits now, BATCH rows to a transaction; a failing batch is logged and dropped.
        Flushes run one at a time: a reader's flush returns only once a periodic one that had already
        taken the waiting exchanges has written them, so the reader finds them."""
        async with self._flushing:
            waiting, self._pending, self._pending_bytes = self._pending, [], 0
            for start in range(0, len(waiting), BATCH):
                records = [generation_record(exchange) for exchange in waiting[start:start + BATCH]]
                try:
                    await self._store.write_generations(records)
                except Exception:
                    self.dropped += len(records)
                    log.warning("writing %d generations failed; they are dropped", len(records), exc_info=True)
