"""Span recording off the request path.

`record()` only puts the span in a dict keyed by (project, span id), so a call never waits on
the database, and a span recorded twice before a flush (started, then finished) is written once.
A background task writes the pending spans in batches, one transaction per batch. A failing write
is counted in `failed_writes`, logged, and retried later with a growing pause; after
MAX_ATTEMPTS failures of the same span it is dropped (and counted in `dropped_spans`) rather than
kept forever. `close()` writes everything accepted before the process exits. Spans made through
the span API go through `write_through()` instead: few, wanted on every replica at once, and
answered with their id only once stored.

Batches are written once a second by default: each write competes with requests for the CPU, and
fewer, larger writes touch fewer requests (at a flush every 0.2 s the writes were the main source
of the gateway's p99). They also go to the store's low-priority writer thread, so a request that
arrives mid-write gets the core at once. When BACKLOG_BATCHES full batches still wait, that
thread is not keeping up (the core is busy with other work) and batches are written at normal
priority until the backlog is gone, as they are at shutdown.

With a journal (`taskgate.telemetry.journal`, always given by the app), `record()` first appends
the span to it, so a span in memory is also on disk: a process that dies loses nothing accepted,
and the next one writes it. A journaled span is then never dropped for a store that cannot be
reached: its batch waits, retried with a pause that grows to MAX_BACKOFF_S, until the store is back
(the journal's bound refuses new calls long before memory runs out). Only a batch the reachable
store refuses MAX_ATTEMPTS times (a span it cannot take) is dropped. `close()` then stores what it
can within its deadline and leaves the rest in the journal for the next start.

The price of batching is that a span reaches the store up to one interval late. When replicas
share the store, a look-up by id that finds nothing therefore keeps asking for up to
`peer_wait_s` (about one interval), since another replica may still hold the span in its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable

from taskgate.errors import JournalUnavailableError, StoreUnavailableError
from taskgate.store.base import SpanRecord, Store
from taskgate.telemetry.journal import SpanJournal
from taskgate.telemetry.store_health import StoreHealth

log = logging.getLogger("taskgate.spans")

MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 5.0  # a store that comes back is written to within this long
PEER_WRITE_MARGIN_S = 0.2  # a peer's batch write itself takes a little time after its interval
MAX_PEER_WAIT_S = 2.0  # however long the interval, a missing span is reported by then
PEER_POLL_S = 0.1
BACKLOG_BATCHES = 4


def peer_wait(flush_interval: float, shared_store: bool) -> float:
    """How long a look-up by id waits for another replica's unwritten batch (none without replicas)."""
    return min(flush_interval + PEER_WRITE_MARGIN_S, MAX_PEER_WAIT_S) if shared_store else 0.0

SpanKey = tuple[str, str]  # (project_id, span_id)
SpanHook = Callable[[SpanRecord], None]


class SpanRecorder:
    def __init__(self, store: Store, flush_interval: float = 1.0, max_batch: int = 500,
                 peer_wait_s: float = 0.0, journal: SpanJournal | None = None,
                 health: StoreHealth | None = None, on_record: SpanHook | None = None,
                 on_write_through: SpanHook | None = None) -> None:
        """`on_record` sees every span `record()` accepts and `on_write_through` every span the span API
        stored (metrics, OTLP export: `taskgate.telemetry.observability`); each must only queue it."""
        self._store = store
        self._journal = journal
        self.health = health or StoreHealth(store)
        self._on_record = on_record
        self._on_write_through = on_write_through
        self._interval = flush_interval
        self._peer_wait_s = peer_wait_s
        self._max_batch = max(1, max_batch)
        self._pending: dict[SpanKey, SpanRecord] = {}
        self._inflight: dict[SpanKey, SpanRecord] = {}  # being written: still visible to find_span
        self._attempts: dict[SpanKey, int] = {}
        self._lock = asyncio.Lock()  # one writer at a time, whether the background task or flush()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.failed_writes = 0
        self.dropped_spans = 0

    @property
    def queue_depth(self) -> int:
        """Spans accepted and not yet written."""
        return len(self._pending) + len(self._inflight)

    async def start(self) -> None:
        """Take back what the journal holds from a process that stopped before storing it, and
        start the background flush task (idempotent)."""
        if self._journal is not None and self._task is None and not self._closed:
            recovered = self._journal.recover()
            for key, span in recovered:
                self._pending.setdefault(key, span)
            if recovered:
                log.warning("the journal holds %d spans not yet stored; writing them", len(recovered))
                self._wake.set()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="taskgate-span-recorder")

    def record(self, span: SpanRecord) -> bool:
        """Accept `span` for writing; a later record of the same id replaces it. Never raises.

        Returns whether the span is safe from a crash: journaled (always, without a journal). When
        the journal refused it, it still waits here for its batch, and the caller decides whether
        its answer may go out (see `Engine._finish`)."""
        try:
            if self._closed:
                self.dropped_spans += 1
                log.warning("span %s recorded after the recorder closed; not written", span.id)
                return False
            journaled = self._journal is None or self._journal.append(span)  # a refusal is logged
            self._pending[(span.project_id, span.id)] = span
            if self._on_record is not None:
                self._on_record(span)
            if len(self._pending) >= self._max_batch:
                self._wake.set()
            return journaled
        except Exception:
            log.exception("could not accept a span for recording")
            return False

    def admit(self) -> None:
        """Refuse a new call (JournalUnavailableError, a 503) when its span could not be journaled."""
        if self._journal is not None and not self._journal.accepting():
            raise JournalUnavailableError("the span journal has no room (its disk is full, or the store has been "
                                          "down long enough to fill it); try again shortly")

    def open(self, span: SpanRecord) -> None:
        """Journal a call that starts answering before it is finished (a stream, before its first
        byte), as it would be stored if the process died now; the finished span replaces it.
        Raises JournalUnavailableError when the journal refuses it: the stream must not start."""
        if self._journal is not None and not self._journal.append_open(span):
            raise JournalUnavailableError("the span journal cannot be written; try again shortly")

    async def write_through(self, span: SpanRecord) -> None:
        """Write `span` now rather than with the next batch: for spans made through the span API,
        which a client may name as a parent, or look up, on another replica at once.

        Returns once the span is stored (or superseded by a newer version of it on its way). If
        the store fails, the error is raised (StoreUnavailableError, a 503, when the store cannot
        be reached) and the span is taken back, so the caller answers
        with an error and the span never appears later behind its back; a version that was
        waiting for the batch before (a call's span being updated) waits there again.
        """
        key = (span.project_id, span.id)
        before = self._pending.get(key)
        self._pending[key] = span  # visible to look-ups here while it is written
        async with self._lock:  # after any batch in flight, so an older version cannot land later
            if self._pending.get(key) is not span:
                return  # a batch wrote it meanwhile, or a newer version is on its way
            try:
                await self._store.write_spans([span])
            except Exception as exc:
                self.failed_writes += 1
                if self._pending.get(key) is span:
                    self._take_back(key, before)
                if not await self.health.reachable():
                    raise StoreUnavailableError("the store cannot be reached; the span was not stored") from exc
                raise
            if self._on_write_through is not None:
                self._on_write_through(span)
            if self._pending.get(key) is span:
                del self._pending[key]
                self._attempts.pop(key, None)
                if self._journal is not None:  # a version journaled for the batch is superseded, stored
                    self._journal.stored(key, self._journal.home(key))

    def _take_back(self, key: SpanKey, before: SpanRecord | None) -> None:
        if before is None:
            del self._pending[key]
        else:
            self._pending[key] = before

    async def find_span(self, project_id: str, span_id: str, *, wait_for_peers: bool = True) -> SpanRecord | None:
        """The newest version of a span: the one waiting to be written, else the stored one. A miss
        is asked again every PEER_POLL_S for up to `peer_wait_s`, unless `wait_for_peers` is false."""
        key = (project_id, span_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._peer_wait_s if wait_for_peers else 0.0)
        while True:
            span = self._pending.get(key) or self._inflight.get(key)
            if span is None:
                span = await self._store.get_span(project_id, span_id)
            left = deadline - loop.time()
            if span is not None or left <= 0:
                return span
            await asyncio.sleep(min(PEER_POLL_S, left))

    async def flush(self) -> None:
        """Write what is pending now, batch by batch; stops at the first failing batch.

        It writes as many batches as were pending when it began (spans recorded meanwhile may fill
        the last one; the rest wait for the next flush). Chasing every new span instead turned each
        flush under load into a train of tiny transactions (484 spans, then 31, 3, 1, 1, 1), each
        costing the event loop a thread hand-off and the GIL.
        """
        async with self._lock:
            if self._journal is not None:
                await asyncio.to_thread(SpanJournal.sync_and_close, self._journal.seal())
            for _ in range(-(-len(self._pending) // self._max_batch)):
                if not self._pending or not await self._write_batch():
                    break
            if self._journal is not None and (stored := self._journal.discard_stored()):
                await asyncio.to_thread(SpanJournal.remove, stored)

    async def close(self, deadline_s: float | None = None) -> None:
        """Stop the background task and write every accepted span. Without a journal each failing
        batch is retried up to MAX_ATTEMPTS, so this ends even when the store is down; with one,
        writing stops at the first failure or after `deadline_s`, and the journal (fsynced) keeps
        the rest for the next start."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._journal is None:
            while self._pending:
                await self.flush()
            return
        try:
            async with asyncio.timeout(deadline_s):
                while self._pending:
                    failed = self.failed_writes
                    await self.flush()
                    if self.failed_writes > failed:
                        break
        except TimeoutError:
            log.warning("the store did not take every span before the shutdown deadline")
        finally:
            if self._pending:
                log.warning("%d spans stay in the journal, to be written at the next start", len(self._pending))
            self._journal.close()

    async def _run(self) -> None:
        failures = 0  # consecutive failed flushes: the pause doubles with each
        while True:
            if failures:
                await asyncio.sleep(min(self._interval * 2 ** failures, MAX_BACKOFF_S))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            before = self.failed_writes
            try:
                await self.flush()
            except Exception:
                log.exception("span flush failed unexpectedly")
                self.failed_writes += 1
            failures = failures + 1 if self.failed_writes > before else 0

    async def _write_batch(self) -> bool:
        keys = list(itertools.islice(self._pending, self._max_batch))
        batch = {key: self._pending.pop(key) for key in keys}
        homes = {key: self._journal.home(key) for key in keys} if self._journal is not None else {}
        self._inflight = batch
        behind = self._closed or len(self._pending) >= self._max_batch * BACKLOG_BATCHES
        try:
            await self._store.write_spans(list(batch.values()), background=not behind)
        except Exception:
            self.failed_writes += 1
            log.warning("writing %d spans failed; will retry", len(batch), exc_info=True)
            self.health.failed()
            # A journaled span is given up only when a store that answers refuses it; while the
            # store cannot be reached, its spans wait (the journal bounds how many).
            counts = self._journal is None or await self.health.reachable()
            self._requeue(batch, failed=counts)
            return False
        except BaseException:
            # Cancelled mid-write (shutdown): the write may or may not have landed; upserting again is safe.
            self._requeue(batch, failed=False)
            raise
        finally:
            self._inflight = {}
        self.health.succeeded()
        for key in batch:
            self._attempts.pop(key, None)
            if self._journal is not None and key not in self._pending:
                self._journal.stored(key, homes[key])
        return True

    def _requeue(self, batch: dict[SpanKey, SpanRecord], failed: bool) -> None:
        for key, span in batch.items():
            if key in self._pending:
                continue  # recorded again meanwhile: the newer version supersedes this one
            attempts = self._attempts.get(key, 0) + (1 if failed else 0)
            if attempts >= MAX_ATTEMPTS:
                self._attempts.pop(key, None)
                self.dropped_spans += 1
                log.error("dropping span %s after %d failed writes", span.id, attempts)
                if self._journal is not None:
                    self._journal.stored(key, self._journal.home(key))  # it can never be stored
                continue
            self._attempts[key] = attempts
            self._pending[key] = span
