"""The replicas' parts on a real Redis: the shared cache, change notices, the span mirror, the breaker,
keys forgotten on notice, and the settings that configure them. Redis is the machine's shared one
under a key prefix of each test's own (skipped where it is absent), or a throwaway `redis-server`
for what needs Redis to die."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskgate.config import ConfigError, Settings
from taskgate.replicas.notices import UNSENT_MAX, ChangeNotices
from taskgate.replicas.redis_link import RedisLink
from taskgate.replicas.shared_cache import SharedCache
from taskgate.replicas.span_mirror import (
    MAX_MIRRORED_BYTES,
    MIN_TTL_S,
    SpanMirror,
    decode_span,
    encode_span,
    mirror_ttl,
)
from taskgate.server.auth import Authenticator
from taskgate.store import SqlStore, open_store
from taskgate.store.base import SpanRecord
from tests.harness import free_port
from tests.replicas import SHARED_REDIS, ThrowawayRedis, delete_prefix, redis_unreachable


@pytest.fixture
def prefix() -> str:
    return f"tgunit-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def link(prefix: str) -> AsyncIterator[RedisLink]:
    reason = redis_unreachable()
    if reason:
        pytest.skip(reason)
    redis_link = RedisLink(SHARED_REDIS, prefix)
    yield redis_link
    await redis_link.aclose()
    delete_prefix(SHARED_REDIS, prefix)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'taskgate.db'}")
    assert isinstance(opened, SqlStore)
    yield opened
    await opened.close()


def dead_link() -> RedisLink:
    """A link to a port where nothing listens: every command fails at once."""
    return RedisLink(f"redis://127.0.0.1:{free_port()}/0", "dead:")


def span(span_id: str = "s1", **fields: object) -> SpanRecord:
    return SpanRecord(id=span_id, trace_id="t1", project_id="p1", name="call",
                      start_time=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), **fields)  # type: ignore[arg-type]


async def eventually(condition: object, timeout: float = 3.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# ---------------------------------------------------------------- the shared cache

async def test_cache_entries_live_in_redis_with_their_ttl(link: RedisLink, store: SqlStore) -> None:
    cache = SharedCache(link, store)
    await cache.cache_put("p1", "k1", {"text": "hi", "payload_json": "null"}, 1)
    assert await cache.cache_get("p1", "k1") == {"text": "hi", "payload_json": "null"}
    assert await cache.cache_get("p2", "k1") is None  # projects never share entries
    assert 0 < await link.client.ttl(link.key("cache", "p1", "k1")) <= 1
    assert await store.cache_get("p1", "k1") is None  # not written to the store as well
    await asyncio.sleep(1.2)
    assert await cache.cache_get("p1", "k1") is None


async def test_a_ttl_of_zero_caches_nothing(link: RedisLink, store: SqlStore) -> None:
    cache = SharedCache(link, store)
    await cache.cache_put("p1", "k0", {"text": "x"}, 0)
    assert await cache.cache_get("p1", "k0") is None


async def test_a_dead_redis_falls_back_to_the_stores_cache(store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    link = dead_link()
    cache = SharedCache(link, store)
    project = await store.ensure_project("team")
    with caplog.at_level(logging.WARNING, "taskgate.redis"):
        await cache.cache_put(project, "k1", {"text": "kept"}, 60)
        assert await cache.cache_get(project, "k1") == {"text": "kept"}
    assert await store.cache_get(project, "k1") == {"text": "kept"}
    assert link.down and not link.usable
    assert sum("Redis failed" in record.message for record in caplog.records) == 1  # once per outage
    await link.aclose()


# ---------------------------------------------------------------- change notices

async def test_a_notice_reaches_the_other_replica_not_its_sender(link: RedisLink, prefix: str) -> None:
    other_link = RedisLink(SHARED_REDIS, prefix)
    sender, receiver = ChangeNotices(link), ChangeNotices(other_link)
    heard: list[tuple[str, str, str]] = []
    for notices, who in ((sender, "sender"), (receiver, "receiver")):
        async def note(project_id: str, subject: str, who: str = who) -> None:
            heard.append((who, project_id, subject))
        notices.on("function", note)
    await sender.start()
    await receiver.start()
    try:
        assert await eventually(lambda: sender.live and receiver.live)
        assert receiver.window(5.0) == float("inf")
        await sender.announce("function", "p1", "greet")
        assert await eventually(lambda: heard)
        await asyncio.sleep(0.05)
        assert heard == [("receiver", "p1", "greet")]
    finally:
        await sender.close()
        await receiver.close()
        await other_link.aclose()


async def test_malformed_notices_are_ignored(link: RedisLink, caplog: pytest.LogCaptureFixture) -> None:
    notices = ChangeNotices(link)
    heard: list[str] = []

    async def note(_: str, subject: str) -> None:
        heard.append(subject)
    notices.on("examples", note)
    await notices.start()
    try:
        assert await eventually(lambda: notices.live)
        with caplog.at_level(logging.WARNING, "taskgate.notices"):
            for junk in (b"", b"{", b"[]", b'{"o": "x"}', b"\xff" * 1000, b'{"o":"x","k":"examples","p":1,"s":[]}',
                         b'{"o":"x","k":"nope","p":"p","s":"s"}', b'{"o":"x","k":[],"p":"p","s":"s"}',
                         b'{"o":{},"k":{"a":1},"p":"p","s":"s"}', b'[' * 100_000, b'{"o":"x","k":"*","p":null}'):
                await link.client.publish(notices.channel, junk)
            await link.client.publish(notices.channel, b'{"o":"x","k":"examples","p":"p1","s":"fn1"}')
            assert await eventually(lambda: heard)
        assert heard == ["fn1"] and notices.live
        assert any("malformed" in record.message for record in caplog.records)
    finally:
        await notices.close()


async def test_without_redis_windows_stay_and_announcing_is_free() -> None:
    notices = ChangeNotices()
    await notices.start()
    await notices.announce("key", "p1", "digest")
    assert not notices.live and notices.window(5.0) == 5.0
    await notices.close()


async def test_notices_unsent_during_an_outage_are_sent_when_redis_returns(tmp_path: Path) -> None:
    missing = ThrowawayRedis.missing()
    if missing:
        pytest.skip(missing)
    with ThrowawayRedis(tmp_path / "redis") as server:
        sender, receiver = ChangeNotices(RedisLink(server.url, "t:")), ChangeNotices(RedisLink(server.url, "t:"))
        heard: list[str] = []
        resets: list[str] = []

        async def note(_: str, subject: str) -> None:
            heard.append(subject)
        receiver.on("function", note)
        receiver.on_reset(lambda: resets.append("reset"))
        await sender.start()
        await receiver.start()
        try:
            assert await eventually(lambda: sender.live and receiver.live)
            server.kill()
            await sender.announce("function", "p1", "changed-while-down")
            assert await eventually(lambda: not receiver.live, 5)
            assert receiver.window(5.0) == 5.0  # polling while notices cannot be heard
            resets_while_down = len(resets)
            server.start()
            assert await eventually(lambda: heard == ["changed-while-down"], 10), heard
            assert receiver.live and len(resets) > resets_while_down  # what it remembered is dropped on return
        finally:
            await sender.close()
            await receiver.close()


async def test_too_many_unsent_notices_become_one_that_resets_everything(link: RedisLink, prefix: str) -> None:
    sender = ChangeNotices(dead_link())
    for index in range(UNSENT_MAX + 5):
        await sender.announce("function", "p1", f"fn{index}")
    receiver = ChangeNotices(link)
    resets: list[str] = []
    receiver.on_reset(lambda: resets.append("reset"))
    await receiver.start()
    try:
        assert await eventually(lambda: receiver.live)
        before = len(resets)
        sender._link = RedisLink(SHARED_REDIS, prefix)  # Redis is back for the sender
        await sender.start()
        assert await eventually(lambda: len(resets) > before)
    finally:
        await sender.close()
        await receiver.close()


# ---------------------------------------------------------------- keys

async def test_a_key_changed_on_one_replica_is_forgotten_by_the_others(link: RedisLink, prefix: str,
                                                                        store: SqlStore) -> None:
    other_link = RedisLink(SHARED_REDIS, prefix)
    here_notices, there_notices = ChangeNotices(link), ChangeNotices(other_link)
    here, there = Authenticator(store, here_notices), Authenticator(store, there_notices)
    await here_notices.start()
    await there_notices.start()
    try:
        assert await eventually(lambda: here_notices.live and there_notices.live)
        there._callers["digest"] = (0.0, None)  # type: ignore[assignment]  # as read before the change
        here._callers["digest"] = (0.0, None)  # type: ignore[assignment]
        here.key_changed()
        assert not here._callers
        assert await eventually(lambda: not there._callers)
    finally:
        await here_notices.close()
        await there_notices.close()
        await other_link.aclose()


# ---------------------------------------------------------------- the span mirror

def test_a_span_survives_the_mirrors_encoding() -> None:
    original = span(input={"q": [1, 2.5, None]}, output="ok", usage={"input_tokens": 3}, tags={"a": "b"},
                    end_time=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), cost=0.25, model_chain=["openai/x"])
    assert decode_span(encode_span(original)) == original


def test_mirrored_spans_outlive_a_few_batch_intervals() -> None:
    assert mirror_ttl(1.0) == MIN_TTL_S and mirror_ttl(0.2) == MIN_TTL_S
    assert mirror_ttl(60) == 180 and mirror_ttl(20.1) == 61


def test_what_json_cannot_carry_or_too_large_is_mirrored_as_a_marker() -> None:
    assert encode_span(span(input=2 ** 70)) == b""
    assert encode_span(span(input="x" * MAX_MIRRORED_BYTES)) == b""


async def test_a_published_span_is_readable_through_another_link(link: RedisLink, prefix: str) -> None:
    mirror, other = SpanMirror(link, ttl_s=30), SpanMirror(RedisLink(SHARED_REDIS, prefix))
    spans = [span(f"s{index}", output=index) for index in range(50)]
    for item in spans:
        mirror.publish(item)
    await mirror.settled("p1", "s49")
    assert await other.find("p1", "s0") == spans[0] and await other.find("p1", "s49") == spans[49]
    assert await other.find("p1", "missing") == "absent"
    assert await other.find("p2", "s0") == "absent"
    assert 0 < await link.client.ttl(link.key("span", "p1", "s0")) <= 30
    mirror.publish(span("big", input="x" * MAX_MIRRORED_BYTES))
    await mirror.settled("p1", "big")
    assert await other.find("p1", "big") == "elsewhere"
    await mirror.discard("p1", "s0")
    assert await other.find("p1", "s0") == "absent"
    trace = await other.trace("p1", "t1")
    assert trace is not None and sorted(item.id for item in trace) == sorted(f"s{i}" for i in range(1, 50))
    assert await other.trace("p1", "t2") == [] and await other.trace("p2", "t1") == []
    await other.discard_trace("p1", "t1")
    assert await mirror.trace("p1", "t1") == [] and await mirror.find("p1", "s7") == "absent"
    await other._link.aclose()


async def test_a_dead_redis_neither_blocks_an_answer_nor_a_look_up() -> None:
    link = dead_link()
    mirror = SpanMirror(link)
    started = asyncio.get_running_loop().time()
    mirror.publish(span())
    await mirror.settled("p1", "s1")
    assert await mirror.find("p1", "other") == "unknown"
    assert await mirror.trace("p1", "t1") is None
    mirror.publish(span("s2"))  # skipped in the cooldown: nothing waits for it
    await mirror.settled("p1", "s2")
    assert asyncio.get_running_loop().time() - started < 1.0
    await link.aclose()


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("value", ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis", "file:///etc/passwd",
                                   "javascript:alert(1)", " ", "x" * 100_000])
def test_a_redis_url_that_cannot_be_used_stops_serve(value: str) -> None:
    if not value.strip():
        assert Settings.from_env({"TASKGATE_REDIS_URL": value}).redis_url is None  # blank is unset
        return
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TASKGATE_REDIS_URL": value})
    assert "TASKGATE_REDIS_URL must be a redis://" in str(raised.value)
    assert f"got a value of {len(value)} characters" in str(raised.value)  # it may hold a password: never echoed


@pytest.mark.parametrize("value", ["a b", "x" * 65, "pre*fix", "pré", "a\nb", "{x}", "\x00"])
def test_a_redis_prefix_that_cannot_be_used_stops_serve(value: str) -> None:
    with pytest.raises(ConfigError, match="TASKGATE_REDIS_PREFIX must be 1 to 64 letters"):
        Settings.from_env({"TASKGATE_REDIS_PREFIX": value})


def test_redis_settings_are_read() -> None:
    settings = Settings.from_env({"TASKGATE_REDIS_URL": " redis://:pw@10.0.0.1:6380/2 ",
                                  "TASKGATE_REDIS_PREFIX": "prod-eu:"})
    assert settings.redis_url == "redis://:pw@10.0.0.1:6380/2" and settings.redis_prefix == "prod-eu:"
    assert "pw" not in repr(settings)
    assert Settings.from_env({}).redis_url is None and Settings.from_env({}).redis_prefix == "taskgate:"
