"""Change notices: a write on one replica makes every other replica drop what it remembered, at once.

Services remember what they read from the store (a function's definition, that a function has no
examples, a project's aliases and custom models, a key's project) so that calls skip the
database. Alone, or without Redis, a service trusts what it remembers for a polling window (a
few seconds), after which it asks the store again: that is how a change made through another
replica used to be noticed. With Redis, each write is announced on one pub/sub channel and every
other replica drops that one entry when the notice arrives (a millisecond or so later), so
remembered entries are trusted until a notice says otherwise (`window()` is infinite).

That trust holds only while this replica hears every notice. So whenever its subscription is lost
or regained, everything remembered is dropped (`on_reset` handlers), and while it is lost the
services fall back to their polling windows. A notice this replica fails to send (Redis is down)
is kept, up to `UNSENT_MAX`, and sent once Redis answers again; when more pile up, a single
"forget everything" notice is sent instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Literal

import orjson
import redis.asyncio as redis

from taskgate.ids import new_id
from taskgate.replicas.redis_link import COOLDOWN_S, RedisLink

log = logging.getLogger("taskgate.notices")

Kind = Literal["function", "examples", "model_names", "key"]
KINDS: tuple[Kind, ...] = ("function", "examples", "model_names", "key")
Handler = Callable[[str, str], Awaitable[None]]  # (project id, subject: a name, an id, a key hash)
Reset = Callable[[], None]
EVERYTHING = "*"  # the kind of a notice that makes every replica drop all it remembers
UNSENT_MAX = 1000
CLOSE_WAIT_S = 2.0
LISTEN_POLL_S = 1.0  # how long one wait for a message lasts; the subscription is pinged after a quiet one


class ChangeNotices:
    """Single node (`link` None): announcing is free and nothing is heard; windows stay as given."""

    def __init__(self, link: RedisLink | None = None) -> None:
        self._link = link
        self._origin = new_id()  # this process's own notices come back to it: they are skipped
        self._handlers: dict[str, list[Handler]] = {}
        self._resets: list[Reset] = []
        self._live = False
        self._unsent: list[bytes] = []
        self._overflowed = False
        self._listener: asyncio.Task[None] | None = None
        self._closing = False
        self._announcing: set[asyncio.Task[None]] = set()  # held until done, or the loop may drop them

    @property
    def channel(self) -> str:
        return self._link.key("changes") if self._link is not None else ""

    @property
    def live(self) -> bool:
        """Whether this replica is hearing every other replica's notices right now."""
        return self._live

    def window(self, polling_s: float) -> float:
        """How long a remembered entry may be trusted: until a notice while they are heard, else `polling_s`."""
        return math.inf if self._live else polling_s

    def on(self, kind: Kind, handler: Handler) -> None:
        """Call `handler(project_id, subject)` for each notice of `kind` from another replica."""
        self._handlers.setdefault(kind, []).append(handler)

    def on_reset(self, reset: Reset) -> None:
        """Call `reset()` when notices may have been missed: drop everything remembered."""
        self._resets.append(reset)

    async def announce(self, kind: Kind | Literal["*"], project_id: str, subject: str) -> None:
        """Tell the other replicas that `subject` of `kind` changed in `project_id`. Never raises."""
        if self._link is None:
            return
        notice = orjson.dumps({"o": self._origin, "k": kind, "p": project_id, "s": subject})
        if not self._link.usable or not await self._send(notice):
            self._keep(notice)

    def announce_soon(self, kind: Kind, project_id: str, subject: str) -> None:
        """`announce` from code that cannot wait (a synchronous callback); never raises."""
        if self._link is None:
            return
        task = asyncio.get_running_loop().create_task(self.announce(kind, project_id, subject))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def start(self) -> None:
        if self._link is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="taskgate-change-notices")

    async def close(self) -> None:
        """Stop listening. The loop also checks `_closing`, since the client may turn a cancellation
        that lands inside it into a connection error, which the loop would otherwise retry."""
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._listener, CLOSE_WAIT_S)
            self._listener = None
        self._live = False

    # ------------------------------------------------------------------ sending

    async def _send(self, notice: bytes) -> bool:
        assert self._link is not None
        try:
            await self._link.client.publish(self.channel, notice)
        except (redis.RedisError, OSError) as exc:
            self._link.failed("change notice", exc)
            return False
        self._link.succeeded()
        return True

    def _keep(self, notice: bytes) -> None:
        """Keep a notice for later; the first of an outage is logged (the link logs the outage itself)."""
        if not self._unsent and not self._overflowed:
            log.warning("change notices cannot be sent (Redis is down); other replicas see changes within their "
                        "polling window, and the notices are sent once Redis answers")
        if len(self._unsent) >= UNSENT_MAX:
            self._overflowed = True
            self._unsent.clear()
        if not self._overflowed:
            self._unsent.append(notice)

    async def _send_kept(self) -> None:
        """After an outage: the notices that could not be sent, or one that resets everything."""
        if self._overflowed:
            self._overflowed = False
            await self._send(orjson.dumps({"o": self._origin, "k": EVERYTHING, "p": "", "s": ""}))
        while self._unsent:
            if not await self._send(self._unsent[0]):
                return
            self._unsent.pop(0)

    # ------------------------------------------------------------------ hearing

    async def _listen(self) -> None:
        assert self._link is not None
        while not self._closing:
            pubsub = self._link.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._set_live(True)
                self._link.succeeded()
                await self._send_kept()
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL_S)
                    if message is None:
                        await pubsub.ping()  # a dead connection shows itself here, not by silence
                    elif message.get("type") == "message":
                        await self._dispatch(message["data"])
            except (redis.RedisError, OSError) as exc:
                self._set_live(False)
                self._link.failed("change-notice subscription", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(COOLDOWN_S)

    def _set_live(self, live: bool) -> None:
        """On any change (notices may have been missed in between), drop everything remembered."""
        was, self._live = self._live, live
        if was != live or live:
            self._reset_all()

    def _reset_all(self) -> None:
        for reset in self._resets:
            try:
                reset()
            except Exception:
                log.exception("dropping remembered entries failed")

    async def _dispatch(self, data: bytes) -> None:
        try:
            notice = orjson.loads(data)
            origin, kind, project_id, subject = notice["o"], notice["k"], notice["p"], notice["s"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignored a malformed change notice on %s", self.channel)
            return
        if origin == self._origin:
            return
        if not all(isinstance(value, str) for value in (kind, project_id, subject)):
            log.warning("ignored a malformed change notice on %s", self.channel)
            return
        if kind == EVERYTHING:
            self._reset_all()
            return
        for handler in self._handlers.get(kind, ()):
            try:
                await handler(project_id, subject)
            except Exception:
                log.exception("handling a %s change notice failed", kind)
