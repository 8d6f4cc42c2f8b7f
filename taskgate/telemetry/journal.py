"""The span journal: every accepted call's span is appended to a local file before the call answers.

Spans wait for their batch in memory (`taskgate.telemetry.recorder`), where a `kill -9`, an OOM kill
or a crash would lose them. So each one is first appended, as one line of JSON, to the journal's
active segment in `<data dir>/journal/`. The recorder seals the segment before each batch (new
appends go to a fresh one) and a sealed segment is deleted once every span whose newest version it
holds is in the store. At start-up the segments left by a process that died are read back, newest
version of each span winning, and handed to the recorder like new spans (`recover`); the store
upserts by span id, so a span that was already stored is written over itself, never twice.

A stream's span is finished only when the stream ends, but its first byte goes out long before:
`open()` appends the span as it would read had the server died there (an error, "interrupted"),
and that version stays in the journal only, until the finished one replaces it. A segment holding
an open span is not deleted.

Durability: an append is one write(2) on a file opened O_APPEND. Once it returns, the bytes are in
the kernel's page cache and survive the process dying in any way (kill -9, OOM, a crash); only a
kernel crash or power loss before the kernel writes them back can lose them. We do not fsync each
append: an fdatasync costs 0.1-10 ms, 100 to 10,000 times the 50 µs the journal may cost a call.
A segment is fsynced when it is sealed and at shutdown, off the request path, so a power loss
loses at most the last flush interval of spans, which a replicated store would not save either.

A torn append (the disk filled mid-write) is never followed by another in the same segment: the
journal switches to a fresh segment first, and reading skips a line that does not parse. When the
disk has less than FREE_RESERVE_BYTES free, or the unstored journal has grown to `max_bytes` (the
store is down), `accepting()` is false and calls are refused with a 503 rather than answered
without a record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from taskgate.store.base import SpanRecord

log = logging.getLogger("taskgate.journal")

SpanKey = tuple[str, str]  # (project_id, span_id)
SEGMENT_PREFIX = "spans-"
SEGMENT_SUFFIX = ".log"
FREE_RESERVE_BYTES = 1024 * 1024  # below this much free space, calls are refused before the disk is full
SPACE_CHECK_S = 0.05  # how long a free-space reading is trusted: statvfs once per burst, not per call
INTERRUPTED = "the server stopped before this call finished; its answer may have been cut short"
_OPEN, _DONE = "open", "span"
_TIMES = ("start_time", "end_time")
_STDLIB = "j"  # a line only the standard library can read exactly (big integers)
_STDLIB_LINE = b'{"j":1,'



def encode(kind: str, span: SpanRecord) -> bytes:
    """One journal line. A value orjson cannot encode (an integer beyond 64 bits) is written by the
    standard library instead, on a line marked for it to read back exactly, rather than refused."""
    try:
        return orjson.dumps({"k": kind, "s": span}, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        record = {**dataclasses.asdict(span), **{name: _iso(getattr(span, name)) for name in _TIMES}}
        return json.dumps({_STDLIB: 1, "k": kind, "s": record}, default=str, separators=(",", ":")).encode() + b"\n"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def decode(line: bytes) -> tuple[str, SpanRecord] | None:
    """The kind and span of a journal line; None for a line that is torn or not ours."""
    try:
        entry = json.loads(line) if line.startswith(_STDLIB_LINE) else orjson.loads(line)
        fields: dict[str, Any] = entry["s"]
        for name in _TIMES:
            if fields.get(name) is not None:
                fields[name] = datetime.fromisoformat(fields[name])
        return str(entry["k"]), SpanRecord(**fields)
    except (KeyError, TypeError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


class SpanJournal:
    """Append-only segments of spans on the local disk, and which spans each still holds unstored."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._active = 0  # the sequence number of the segment appends go to
        self._holds: dict[int, set[SpanKey]] = {}  # segment -> spans whose newest version only it holds
        self._home: dict[SpanKey, int] = {}  # span -> the segment holding its newest version
        self._sizes: dict[int, int] = {}
        self._bytes = 0  # all segments' sizes, kept as a sum: read on every call
        self._torn = False  # the last append failed: the active segment takes no more
        self._space_checked = 0.0
        self._space_ok = True
        self.failed_appends = 0
        self.slot = directory  # the slot this process locked, once `recover` ran
        self._lock_fd: int | None = None
        self._orphan_locks: dict[Path, int] = {}

    # ---------------------------------------------------------------- start-up

    def recover(self) -> list[tuple[SpanKey, SpanRecord]]:
        """Open the journal, and return the spans previous processes left unstored: the newest
        version of each (an open span becomes the interrupted call it was).

        Processes sharing a data directory (workers, replicas on one machine) each lock a slot of
        their own, `slot-N`, the first free one. What a stopped process left, in this slot or in any
        other whose lock is free, is copied into this process's first segment, made durable, and
        only then deleted: a crash during recovery leaves copies, which the store's upsert by id
        makes harmless, never a gap.
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.slot = self._lock_slot()
        orphans = [self.slot, *self._free_slots()]
        newest: dict[SpanKey, SpanRecord] = {}
        old_segments = []
        for slot in orphans:
            for _, path in self._segments(slot):
                old_segments.append(path)
                for kind, span in self._read(path):
                    if kind == _OPEN:
                        span = dataclasses.replace(span, status="error", error=INTERRUPTED)
                    newest[(span.project_id, span.id)] = span
        self._active = max((n for n, _ in self._segments(self.slot)), default=0) + 1
        self._open_segment()
        if newest:
            for span in newest.values():
                if not self.append(span):
                    raise OSError(f"cannot copy the journal's unstored spans into {self._path(self._active)}")
            assert self._fd is not None
            os.fsync(self._fd)
        for path in old_segments:
            path.unlink(missing_ok=True)
        for slot in orphans[1:]:
            self._release(slot)
        return list(newest.items())

    def _lock_slot(self) -> Path:
        """The first slot this process can lock; the lock is held until the process ends."""
        for number in itertools.count():
            slot = self.directory / f"slot-{number}"
            fd = self._try_lock(slot)
            if fd is not None:
                self._lock_fd = fd
                return slot
        raise AssertionError("itertools.count never ends")

    def _free_slots(self) -> list[Path]:
        """Other slots no live process holds (their process stopped): locked here until recovered."""
        free = []
        for slot in sorted(self.directory.glob("slot-*")):
            if slot != self.slot and slot.is_dir() and (fd := self._try_lock(slot)) is not None:
                self._orphan_locks[slot] = fd
                free.append(slot)
        return free

    @staticmethod
    def _try_lock(slot: Path) -> int | None:
        slot.mkdir(exist_ok=True, mode=0o700)
        fd = os.open(slot / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _release(self, slot: Path) -> None:
        fd = self._orphan_locks.pop(slot)
        with contextlib.suppress(OSError):
            (slot / "lock").unlink()
            slot.rmdir()
        os.close(fd)

    def _segments(self, slot: Path) -> list[tuple[int, Path]]:
        found = []
        for path in slot.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"):
            digits = path.name[len(SEGMENT_PREFIX):-len(SEGMENT_SUFFIX)]
            if digits.isdigit():
                found.append((int(digits), path))
        return sorted(found)

    @staticmethod
    def _read(path: Path) -> Iterator[tuple[str, SpanRecord]]:
        with path.open("rb") as handle:
            for line in handle:
                entry = decode(line) if line.endswith(b"\n") else None
                if entry is None:
                    log.warning("skipping a torn or unreadable record in %s", path.name)
                    continue
                yield entry

    # ---------------------------------------------------------------- the request path

    def accepting(self) -> bool:
        """Whether a new call may be taken: the unstored journal is under its bound and the disk has
        room (read at most every SPACE_CHECK_S; after a failed append the next one starts afresh)."""
        if self._bytes >= self.max_bytes:
            return False
        now = time.monotonic()
        if now - self._space_checked > SPACE_CHECK_S:
            self._space_checked = now
            self._space_ok = self._free_bytes() >= FREE_RESERVE_BYTES
        return self._space_ok

    def append(self, span: SpanRecord) -> bool:
        """Journal the newest version of a span; False (logged and counted) when the disk refused it."""
        return self._append(_DONE, span)

    def append_open(self, span: SpanRecord) -> bool:
        """Journal a span whose call is still answering (a stream), as it would read if we died now."""
        return self._append(_OPEN, span)

    def _append(self, kind: str, span: SpanRecord) -> bool:
        line = encode(kind, span)
        try:
            if self._torn:
                self._close_fd(self._rotate())
            written = os.write(self._fd if self._fd is not None else self._open_segment(), line)
        except OSError as exc:
            return self._failed(exc)
        self._sizes[self._active] += written
        self._bytes += written
        if written != len(line):
            return self._failed(OSError(f"short write: {written} of {len(line)} bytes"))
        self._claim((span.project_id, span.id), self._active)
        return True

    def _failed(self, exc: OSError) -> bool:
        self._torn = True
        self.failed_appends += 1
        log.error("the span journal in %s cannot be written: %s", self.directory, exc)
        return False

    def _claim(self, key: SpanKey, number: int) -> None:
        before = self._home.get(key)
        if before is not None and before != number:
            self._holds[before].discard(key)
        self._home[key] = number
        self._holds[number].add(key)

    # ---------------------------------------------------------------- the writer's side

    def home(self, key: SpanKey) -> int | None:
        """The segment holding the newest journaled version of a span."""
        return self._home.get(key)

    def stored(self, key: SpanKey, number: int | None) -> None:
        """The version of `key` journaled in segment `number` is in the store."""
        if number is not None and self._home.get(key) == number:
            del self._home[key]
            self._holds[number].discard(key)

    def seal(self) -> int | None:
        """Start a new segment for the appends to come (if the active one holds anything). Returns
        the sealed segment's file descriptor, for `sync_and_close` to make durable off the event
        loop, or None."""
        sealed = None
        if self._sizes.get(self._active, 0) > 0:
            try:
                sealed = self._rotate()
            except OSError as exc:  # no room for a new segment: the active one keeps taking appends
                log.warning("cannot start a new journal segment: %s", exc)
        return sealed

    def discard_stored(self) -> list[Path]:
        """Forget the sealed segments whose spans are all in the store, and return their files for
        `remove` to delete off the event loop (an unlink can take milliseconds; one left behind by a
        crash is read again at the next start, harmlessly)."""
        done = [n for n, keys in self._holds.items() if not keys and n != self._active]
        for number in done:
            del self._holds[number]
            self._bytes -= self._sizes.pop(number, 0)
        return [self._path(number) for number in done]

    @staticmethod
    def remove(paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    @staticmethod
    def sync_and_close(fd: int | None) -> None:
        """fsync a sealed segment and close it: a power loss then cannot take what it holds."""
        if fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    def unstored(self) -> int:
        """How many spans the journal holds that the store does not have yet."""
        return len(self._home)

    def size(self) -> int:
        """Bytes of journal on disk, stored or not (a segment goes once all it holds is stored)."""
        return self._bytes

    def close(self) -> None:
        """Make the active segment durable and close it; what it holds unstored is read at next start."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        for number in [n for n, keys in self._holds.items() if not keys]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(number))
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---------------------------------------------------------------- segments

    def _path(self, number: int) -> Path:
        return self.slot / f"{SEGMENT_PREFIX}{number:012d}{SEGMENT_SUFFIX}"

    def _open_segment(self) -> int:
        self._fd = os.open(self._path(self._active), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._holds.setdefault(self._active, set())
        self._sizes.setdefault(self._active, 0)
        return self._fd

    def _rotate(self) -> int | None:
        """Open the next segment for appends; the previous one's descriptor is returned, for the
        caller to close. Raises OSError (the previous segment still active) if the disk refuses."""
        previous = self._fd
        self._active += 1
        try:
            self._open_segment()
        except OSError:
            self._active -= 1
            raise
        self._torn = False
        return previous

    @staticmethod
    def _close_fd(fd: int | None) -> None:
        if fd is not None:
            os.close(fd)

    def _free_bytes(self) -> int:
        try:
            stats = os.statvfs(self.directory)
        except OSError:
            return 0
        return stats.f_bavail * stats.f_frsize
