"""Upstream keep-alive: a stream that was read to its own end gives its connection back to the pool.

The fake records the client port each request came from, so a new port means a new connection.
Both adapters read their stream through `UpstreamHTTP.open_sse`; each is checked here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from taskgate.providers import upstream_http as http
from taskgate.providers.anthropic.adapter import AnthropicAdapter
from taskgate.providers.base import Adapter, ChatRequest
from taskgate.providers.catalog import PRESETS, ResolvedProvider
from taskgate.providers.openai_compat import OpenAICompatAdapter
from tests.fakes.provider import Behaviour, FakeProvider

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODEL = "keepalive-model"
REQUEST = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "Say hello"}])
LATE_END_S = 0.3


@pytest_asyncio.fixture(params=["openai", "anthropic"])
async def adapter(request: pytest.FixtureRequest, fake: FakeProvider) -> AsyncIterator[Adapter]:
    made: OpenAICompatAdapter | AnthropicAdapter
    if request.param == "openai":
        made = OpenAICompatAdapter(ResolvedProvider(PRESETS["openai"], fake.openai_base_url, "sk"), timeout_s=10)
    else:
        made = AnthropicAdapter(ResolvedProvider(PRESETS["anthropic"], fake.anthropic_base_url, "ak"), timeout_s=10)
    yield made
    await made.aclose()


def ports(fake: FakeProvider) -> list[int]:
    return [recorded.client_port for recorded in fake.requests]


async def test_a_stream_whose_body_ends_late_keeps_its_connection(
    fake: FakeProvider, adapter: Adapter
) -> None:
    fake.script(MODEL, Behaviour(text="hello there", end_delay_s=LATE_END_S))
    started = time.monotonic()
    chunks = [chunk async for chunk in adapter.stream(REQUEST)]
    assert time.monotonic() - started < LATE_END_S  # the answer did not wait for the body's last bytes
    assert "".join(chunk.text or "" for chunk in chunks) == "hello there"
    await asyncio.sleep(LATE_END_S + 0.3)
    await adapter.complete(REQUEST)
    first, second = ports(fake)
    assert first == second and first != 0


async def test_a_stream_left_before_its_end_closes_its_connection(
    fake: FakeProvider, adapter: Adapter
) -> None:
    """The upstream must see the client go, or it goes on generating (and billing)."""
    fake.script(MODEL, Behaviour(text="one two three four five six", event_delay_s=0.05))
    stream = adapter.stream(REQUEST)
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()
    assert await asyncio.to_thread(fake.wait_disconnects, 1, 5.0)
    await adapter.complete(REQUEST)
    first, second = ports(fake)
    assert first != second


async def test_a_tail_that_never_comes_closes_the_connection(
    fake: FakeProvider, adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "TAIL_WAIT_S", 0.1)
    fake.script(MODEL, Behaviour(text="hello", end_delay_s=3.0))
    chunks = [chunk async for chunk in adapter.stream(REQUEST)]
    assert "".join(chunk.text or "" for chunk in chunks) == "hello"
    assert await asyncio.to_thread(fake.wait_disconnects, 1, 5.0)
    await adapter.complete(REQUEST)
    first, second = ports(fake)
    assert first != second


async def test_closing_the_adapter_ends_a_tail_still_waited_for(
    fake: FakeProvider, adapter: Adapter
) -> None:
    fake.script(MODEL, Behaviour(text="hello", end_delay_s=3.0))
    _ = [chunk async for chunk in adapter.stream(REQUEST)]
    started = time.monotonic()
    await adapter.aclose()
    assert time.monotonic() - started < 1.0
    assert await asyncio.to_thread(fake.wait_disconnects, 1, 5.0)
