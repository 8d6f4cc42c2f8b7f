"""The Anthropic adapter against the real fake upstream (and a raw SSE server for wire quirks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from taskgate.errors import (
    BadRequestError,
    ModelRejectedError,
    ProviderError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from taskgate.providers.anthropic.adapter import AnthropicAdapter
from taskgate.providers.base import ChatChunk, ChatRequest, StructuredOutput
from taskgate.providers.catalog import PRESETS, ResolvedProvider
from tests.fakes import anthropic_wire
from tests.fakes.provider import REJECTED_MODEL, Behaviour, FakeProvider
from tests.fakes.raw_sse import raw_sse_upstream
from tests.harness import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello"}]
TOOLS = [
    {"type": "function", "function": {"name": "weather", "description": "Weather now",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "clock", "parameters": {"type": "object", "properties": {}}}},
]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
          "required": ["city", "n"]}


def make_adapter(base_url: str, timeout_s: float = 10.0) -> AnthropicAdapter:
    return AnthropicAdapter(ResolvedProvider(PRESETS["anthropic"], base_url, "ak-test"), timeout_s=timeout_s)


@pytest_asyncio.fixture
async def adapter(fake: FakeProvider) -> AsyncIterator[AnthropicAdapter]:
    adapter = make_adapter(fake.anthropic_base_url)
    yield adapter
    await adapter.aclose()


async def collect(adapter: AnthropicAdapter, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in adapter.stream(request)]


async def test_complete_sends_the_messages_api_body(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    request = ChatRequest(model="claude-a", messages=USER, tools=TOOLS, tool_choice="auto",
                          options={"temperature": 0.1, "max_completion_tokens": 99, "stop": "END", "seed": 1,
                                   "timeout": 5}, extra_headers={"anthropic-beta": "x"})
    response = await adapter.complete(request)
    assert response.text == fake.default_text("claude-a")
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    sent = fake.requests[-1]
    assert sent.path == "/anthropic/v1/messages"
    assert sent.headers["x-api-key"] == "ak-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "x"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "model": "claude-a",
        "system": "Be terse.",
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 99,
        "temperature": 0.1,
        "stop_sequences": ["END"],
        "tools": [
            {"name": "weather", "description": "Weather now",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "clock", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "auto"},
    }


async def test_complete_usage_and_cache_tokens(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    fake.script("claude-u", Behaviour(text="hi", usage={
        "input_tokens": 50, "output_tokens": 4, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 8,
    }))
    usage = (await adapter.complete(ChatRequest(model="claude-u", messages=USER))).usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        50, 4, 40, 8)


async def test_complete_tool_calls(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    fake.script("claude-t", Behaviour(text="Checking.", tool_calls=[("weather", {"city": "Oslo"}), ("clock", {})]))
    response = await adapter.complete(ChatRequest(model="claude-t", messages=USER, tools=TOOLS))
    assert response.text == "Checking."
    assert response.finish_reason == "tool_calls"
    assert [(c.name, orjson.loads(c.arguments)) for c in response.tool_calls] == [
        ("weather", {"city": "Oslo"}), ("clock", {}),
    ]
    assert all(c.id.startswith("toolu_") for c in response.tool_calls)


@pytest.mark.parametrize(("stop_reason", "finish"), [("max_tokens", "length"), ("refusal", "content_filter")])
async def test_complete_finish_reasons(
    fake: FakeProvider, adapter: AnthropicAdapter, stop_reason: str, finish: str
) -> None:
    fake.script("claude-f", Behaviour(text="partial", finish_reason=stop_reason))
    assert (await adapter.complete(ChatRequest(model="claude-f", messages=USER))).finish_reason == finish


async def test_structured_complete_is_a_forced_tool(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    request = ChatRequest(model="claude-s", messages=USER, structured=StructuredOutput(SCHEMA, "city_info"))
    response = await adapter.complete(request)
    sent = fake.requests[-1].json
    assert sent["tools"] == [{"name": "city_info", "description": "Respond with the result", "input_schema": SCHEMA}]
    assert sent["tool_choice"] == {"type": "tool", "name": "city_info"}
    value = orjson.loads(response.text)
    assert set(value) == {"city", "n"}
    assert response.tool_calls == []
    assert response.finish_reason == "stop"


async def test_structured_stream_yields_the_json_as_text(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    fake.script("claude-ss", Behaviour(json={"city": "Paris in spring", "n": 3}, event_delay_s=0.003))
    chunks = await collect(adapter, ChatRequest(model="claude-ss", messages=USER, structured=StructuredOutput(SCHEMA)))
    assert all(c.tool_index is None for c in chunks)
    assert len([c for c in chunks if c.text]) > 1
    assert orjson.loads("".join(c.text for c in chunks)) == {"city": "Paris in spring", "n": 3}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert fake.requests[-1].json["stream"] is True


async def test_stream_text_tools_finish_and_usage(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    fake.script("claude-st", Behaviour(text="Let me look.", tool_calls=[("weather", {"city": "Rome"}),
                                                                        ("clock", {"tz": "CET"})],
                                       usage={"input_tokens": 21, "cache_read_input_tokens": 5}))
    chunks = await collect(adapter, ChatRequest(model="claude-st", messages=USER, tools=TOOLS))
    assert "".join(c.text for c in chunks) == "Let me look."
    starts = [(c.tool_index, c.tool_name) for c in chunks if c.tool_id]
    assert starts == [(0, "weather"), (1, "clock")]
    args = {i: "".join(c.tool_arguments for c in chunks if c.tool_index == i) for i in (0, 1)}
    assert orjson.loads(args[0]) == {"city": "Rome"} and orjson.loads(args[1]) == {"tz": "CET"}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.input_tokens, usage.cache_read_tokens) == (21, 5) and usage.output_tokens > 1


@pytest.mark.parametrize(("status", "error_type"), [
    (429, UpstreamRateLimitedError), (500, UpstreamUnavailableError), (529, UpstreamUnavailableError),
    (503, UpstreamUnavailableError),
])
@pytest.mark.parametrize("streaming", [False, True])
async def test_status_errors_are_mapped(
    fake: FakeProvider, adapter: AnthropicAdapter, status: int, error_type: type, streaming: bool
) -> None:
    fake.script("claude-e", Behaviour(status=status))
    request = ChatRequest(model="claude-e", messages=USER)
    with pytest.raises(error_type) as caught:
        await (collect(adapter, request) if streaming else adapter.complete(request))
    assert orjson.loads(anthropic_wire.error_body(status))["error"]["message"] in caught.value.detail


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model_is_rejected(adapter: AnthropicAdapter, streaming: bool) -> None:
    request = ChatRequest(model=REJECTED_MODEL, messages=USER)
    with pytest.raises(ModelRejectedError, match=REJECTED_MODEL):
        await (collect(adapter, request) if streaming else adapter.complete(request))


async def test_bad_input_is_refused_before_any_request(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    messages = [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{"}}]}]
    with pytest.raises(BadRequestError, match="c1"):
        await adapter.complete(ChatRequest(model="claude-b", messages=messages))
    with pytest.raises(BadRequestError, match="timeout"):
        await adapter.complete(ChatRequest(model="claude-b", messages=USER, options={"timeout": "soon"}))
    assert fake.requests == []


@pytest.mark.parametrize("streaming", [False, True])
async def test_timeout(fake: FakeProvider, adapter: AnthropicAdapter, streaming: bool) -> None:
    fake.script("claude-slow", Behaviour(delay_s=3))
    request = ChatRequest(model="claude-slow", messages=USER, options={"timeout": 0.2})
    with pytest.raises(UpstreamTimeoutError):
        await (collect(adapter, request) if streaming else adapter.complete(request))


async def test_connection_refused() -> None:
    adapter = make_adapter(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        with pytest.raises(ProviderError, match="cannot reach"):
            await adapter.complete(ChatRequest(model="claude-x", messages=USER))
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("raw", [b"not json at all", b'{"type": "message"}', b'{"id": "x"}'])
async def test_malformed_body(fake: FakeProvider, adapter: AnthropicAdapter, raw: bytes) -> None:
    fake.script("claude-m", Behaviour(raw_body=raw))
    with pytest.raises(UpstreamProtocolError):
        await adapter.complete(ChatRequest(model="claude-m", messages=USER))


@pytest.mark.parametrize("streaming", [False, True])
async def test_malformed_usage_is_a_protocol_error(
    fake: FakeProvider, adapter: AnthropicAdapter, streaming: bool
) -> None:
    fake.script("claude-mu", Behaviour(usage={"input_tokens": "many"}))
    request = ChatRequest(model="claude-mu", messages=USER)
    with pytest.raises(UpstreamProtocolError):
        await (collect(adapter, request) if streaming else adapter.complete(request))


async def test_stream_cut_midway(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    fake.script("claude-cut", Behaviour(text="one two three four five", cut_after=4))
    with pytest.raises(UpstreamProtocolError, match="stream ended early"):
        await collect(adapter, ChatRequest(model="claude-cut", messages=USER))


async def test_in_stream_error_event(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    fake.script("claude-fail", Behaviour(text="one two three four", fail_after=3))
    with pytest.raises(UpstreamUnavailableError, match="Overloaded"):
        await collect(adapter, ChatRequest(model="claude-fail", messages=USER))


async def test_consumer_aclose_disconnects_the_upstream(fake: FakeProvider, adapter: AnthropicAdapter) -> None:
    fake.script("claude-long", Behaviour(text="word " * 200, event_delay_s=0.02))
    stream = adapter.stream(ChatRequest(model="claude-long", messages=USER))
    first = await anext(stream)
    while not first.text:
        first = await anext(stream)
    await stream.aclose()
    assert await asyncio.to_thread(fake.wait_disconnects, 1, 10.0)


async def test_embeddings_are_refused_clearly(adapter: AnthropicAdapter) -> None:
    with pytest.raises(BadRequestError, match="no embeddings"):
        await adapter.embed("claude-a", ["x"], {})


# ---- a raw upstream for what the fake does not produce: interleaved blocks, CRLF, comments, split reads

INTERLEAVED = [
    ("message_start", {"message": {"model": "claude-raw", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "A"}}),
    ("content_block_stop", {"index": 0}),
    ("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "weather",
                                                           "input": {}}}),
    ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}}),
    ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}}),
    ("content_block_stop", {"index": 1}),
    ("content_block_start", {"index": 2, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 2, "delta": {"type": "text_delta", "text": "B"}}),
    ("content_block_stop", {"index": 2}),
    ("content_block_start", {"index": 3, "content_block": {"type": "tool_use", "id": "t2", "name": "clock",
                                                           "input": {}}}),
    ("content_block_delta", {"index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    ("content_block_stop", {"index": 3}),
    ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
    ("message_stop", {}),
]


def crlf_stream() -> bytes:
    """The events with CRLF line ends, comments, and one payload split over two data lines."""
    out = [b": keep-alive comment\r\n\r\n"]
    for name, payload in INTERLEAVED:
        data = orjson.dumps({"type": name, **payload})
        if name == "content_block_start":
            head, _, rest = data.partition(b",")
            out.append(b"event: " + name.encode() + b"\r\ndata: " + head + b",\r\ndata: " + rest + b"\r\n\r\n")
        else:
            out.append(b"event: " + name.encode() + b"\r\ndata: " + data + b"\r\n\r\n")
    return b"".join(out)


@pytest_asyncio.fixture
async def raw_upstream() -> AsyncIterator[str]:
    async with raw_sse_upstream("/v1/messages", [crlf_stream()], piece=7) as url:  # awkward reads, inside "\r\n" too
        yield url


async def test_interleaved_text_and_tools_keep_openai_indices(raw_upstream: str) -> None:
    adapter = make_adapter(raw_upstream)
    try:
        chunks = await collect(adapter, ChatRequest(model="claude-raw", messages=USER, tools=TOOLS))
    finally:
        await adapter.aclose()
    assert "".join(c.text for c in chunks) == "AB"
    # Pieces that arrived in one read may be merged, so compare what a client rebuilds: the head of
    # each call (first fragment of its index), in order, and the arguments gathered by index.
    tools = [c for c in chunks if c.tool_index is not None]
    heads = [(c.tool_index, c.tool_id, c.tool_name) for c in tools if c.tool_id is not None]
    assert heads == [(0, "t1", "weather"), (1, "t2", "clock")]
    assert [c.tool_index for c in tools].index(1) > max(i for i, c in enumerate(tools) if c.tool_index == 0)
    assert all(c.tool_name is None for c in tools if c.tool_id is None)
    gathered = {index: "".join(c.tool_arguments for c in tools if c.tool_index == index) for index in (0, 1)}
    assert gathered == {0: '{"city":"Oslo"}', 1: "{}"}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    usage = chunks[-1].usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (12, 30)


def _events(*items: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **payload}) + b"\n\n"
                    for name, payload in items)


@pytest_asyncio.fixture
async def burst_upstream() -> AsyncIterator[tuple[str, list[bytes]]]:
    """Sends the first item of its `body` (set by the test), then the rest in one write: the adapter
    gets a lead-in read, then one read of everything else."""
    body: list[bytes] = []
    async with raw_sse_upstream("/v1/messages", body, lead=1) as url:
        yield url, body


async def test_an_error_in_a_burst_comes_after_the_text_before_it(burst_upstream: tuple[str, list[bytes]]) -> None:
    url, body = burst_upstream
    body.append(_events(
        INTERLEAVED[0], INTERLEAVED[1],
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "zero "}}),
    ))
    body.append(_events(
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "one "}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "two "}}),
        ("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ))
    adapter = make_adapter(url)
    seen: list[ChatChunk] = []
    try:
        with pytest.raises(ProviderError, match="Overloaded"):
            async for chunk in adapter.stream(ChatRequest(model="claude-burst", messages=USER)):
                seen.append(chunk)
    finally:
        await adapter.aclose()
    assert [c.text for c in seen if c.text] == ["zero ", "one two "]


async def test_events_after_message_stop_in_the_same_read_are_ignored(
    burst_upstream: tuple[str, list[bytes]],
) -> None:
    url, body = burst_upstream
    body.append(_events(*INTERLEAVED) + b"event: content_block_delta\ndata: not json at all\n\n")
    adapter = make_adapter(url)
    try:
        chunks = await collect(adapter, ChatRequest(model="claude-burst", messages=USER, tools=TOOLS))
    finally:
        await adapter.aclose()
    assert "".join(c.text for c in chunks) == "AB"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
