"""A just-answered span, readable from every replica at once.

The recorder keeps a call's span in memory for up to a batch interval before the store has it
(`telemetry.recorder`), so another replica asked for that span id used to poll the store for about
an interval. With Redis, each recorded span is also published to `<prefix>span:<project>:<id>`
with a short TTL (`mirror_ttl`: a few batch intervals, at least MIN_TTL_S), and its id
added to its trace's set `<prefix>trace:<project>:<trace id>` (same TTL). A look-up by id that
this replica cannot answer from memory reads the span there, and a trace read adds the trace's
mirrored spans to the stored ones: no waiting on peers.

Publishing is batched like the recorder's writes, but by the event loop's pace rather than a timer:
spans recorded while one pipeline is on its way go in the next. An answer waits for its own span's
pipeline (`settled`), so by the time a client has a span id, every replica can read it; that wait
is bounded by Redis's command timeout, and skipped while Redis is down (look-ups then wait on peers as
before). A span too large to mirror (`MAX_MIRRORED_BYTES`) or that JSON cannot carry is published
as an empty marker: readers then know a peer holds it and wait for the store as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from datetime import datetime
from typing import Any, Literal

import orjson
import redis.asyncio as redis

from taskgate.replicas.redis_link import RedisLink
from taskgate.store.base import SpanRecord

MIN_TTL_S = 30  # a span's batch reaches the store within a few intervals, retries included
MAX_MIRRORED_BYTES = 256 * 1024  # at 100 calls a second, spans this large would hold 750 MB of Redis each TTL

SpanKey = tuple[str, str]  # (project_id, span_id)
# KEYS: the span's key, its trace's set; ARGV: the encoded span, its id, the TTL in seconds.
PUBLISH_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
"""
Missing = Literal["absent", "elsewhere", "unknown"]  # not mirrored; mirrored only as a marker; Redis is down
_DATES = ("start_time", "end_time")


def mirror_ttl(flush_interval_s: float) -> int:
    """Seconds a mirrored span is kept: three of the recorder's batch intervals, and at least MIN_TTL_S."""
    return max(MIN_TTL_S, math.ceil(3 * flush_interval_s))


def encode_span(span: SpanRecord) -> bytes:
    """The span as JSON, or b"" (the marker) when it is too large or holds what JSON cannot."""
    try:
        encoded = orjson.dumps(span)
    except TypeError:
        return b""
    return encoded if len(encoded) <= MAX_MIRRORED_BYTES else b""


def decode_span(raw: bytes | str) -> SpanRecord:
    fields: dict[str, Any] = orjson.loads(raw)
    for name in _DATES:
        if isinstance(fields.get(name), str):
            fields[name] = datetime.fromisoformat(fields[name])
    known = {field.name for field in dataclasses.fields(SpanRecord)}
    return SpanRecord(**{name: value for name, value in fields.items() if name in known})


class SpanMirror:
    def __init__(self, link: RedisLink, ttl_s: int = MIN_TTL_S) -> None:
        self._link = link
        self._ttl_s = ttl_s
        self._waiting: dict[SpanKey, SpanRecord] = {}  # for the next pipeline
        self._next_round: asyncio.Future[None] | None = None  # resolved once that pipeline is done
        self._sending: dict[SpanKey, SpanRecord] = {}
        self._sending_round: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._publish = link.client.register_script(PUBLISH_SCRIPT)

    def publish(self, span: SpanRecord) -> None:
        """Queue `span` for Redis; never waits, never raises. Skipped while Redis is down."""
        if not self._link.usable:
            return
        self._waiting[(span.project_id, span.id)] = span
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_rounds(), name="taskgate-span-mirror")

    async def settled(self, project_id: str, span_id: str) -> None:
        """Return once the span's pipeline has been answered, or has failed."""
        key = (project_id, span_id)
        if key in self._waiting:
            if self._next_round is None:
                self._next_round = asyncio.get_running_loop().create_future()
            round_done = self._next_round
        elif key in self._sending and self._sending_round is not None:
            round_done = self._sending_round
        else:
            return
        await asyncio.shield(round_done)  # bounded: Redis commands time out (redis_link.COMMAND_TIMEOUT_S)

    async def find(self, project_id: str, span_id: str) -> SpanRecord | Missing:
        """The newest published version of the span, or why there is none."""
        key = (project_id, span_id)
        local = self._waiting.get(key) or self._sending.get(key)
        if local is not None:
            return local
        if not self._link.usable:
            return "unknown"
        try:
            raw = await self._link.client.get(self._link.key("span", project_id, span_id))
        except (redis.RedisError, OSError) as exc:
            self._link.failed("span look-up", exc)
            return "unknown"
        self._link.succeeded()
        if raw is None:
            return "absent"
        return decode_span(raw) if raw else "elsewhere"

    async def trace(self, project_id: str, trace_id: str) -> list[SpanRecord] | None:
        """The trace's published spans (None while Redis is down), the ones not yet sent included."""
        unsent = [span for span in (*self._waiting.values(), *self._sending.values())
                  if span.project_id == project_id and span.trace_id == trace_id]
        if not self._link.usable:
            return None
        try:
            members = await self._link.client.smembers(self._link.key("trace", project_id, trace_id))
            ids = sorted(member.decode() if isinstance(member, bytes) else str(member) for member in members)
            keys = [self._link.key("span", project_id, span_id) for span_id in ids]
            values = await self._link.client.mget(keys) if keys else []
        except (redis.RedisError, OSError) as exc:
            self._link.failed("trace look-up", exc)
            return None
        self._link.succeeded()
        published = {span.id: span for span in (decode_span(raw) for raw in values if raw)}
        published.update((span.id, span) for span in unsent)
        return list(published.values())

    async def discard_trace(self, project_id: str, trace_id: str) -> None:
        """The trace was deleted: its mirrored spans go too."""
        spans = await self.trace(project_id, trace_id) or []
        for span in spans:
            await self.discard(project_id, span.id)
        if self._link.usable:
            with contextlib.suppress(redis.RedisError, OSError):
                await self._link.client.delete(self._link.key("trace", project_id, trace_id))

    async def discard(self, project_id: str, span_id: str) -> None:
        """The span was deleted: no replica may read it from here any more."""
        key = (project_id, span_id)
        self._waiting.pop(key, None)
        if not self._link.usable:
            return
        try:
            await self._link.client.delete(self._link.key("span", project_id, span_id))
        except (redis.RedisError, OSError) as exc:
            self._link.failed("span discard", exc)

    async def close(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender

    async def _send_rounds(self) -> None:
        try:
            while self._waiting:
                self._sending, self._waiting = self._waiting, {}
                self._sending_round, self._next_round = self._next_round, None
                try:
                    await self._send(self._sending)
                finally:
                    if self._sending_round is not None and not self._sending_round.done():
                        self._sending_round.set_result(None)
                    self._sending, self._sending_round = {}, None
        finally:
            self._sender = None

    async def _send(self, spans: dict[SpanKey, SpanRecord]) -> None:
        """One script call per span (its value, and its id in its trace's set, both with the TTL): a
        lone span is one command, several are one pipeline."""
        calls: list[tuple[list[str], list[bytes | str | int]]] = [
            ([self._link.key("span", project_id, span_id), self._link.key("trace", project_id, span.trace_id)],
             [encode_span(span), span_id, self._ttl_s]) for (project_id, span_id), span in spans.items()]
        try:
            if len(calls) == 1:
                await self._publish(keys=calls[0][0], args=calls[0][1])
            else:
                pipe = self._link.client.pipeline(transaction=False)
                for keys, args in calls:
                    await self._publish(keys=keys, args=args, client=pipe)
                await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._link.failed("span publish", exc)
            return
        self._link.succeeded()
