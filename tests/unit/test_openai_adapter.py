"""The OpenAI-compatible adapter against the real fake upstream on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
from taskgate.providers.base import ChatChunk, ChatRequest, StructuredOutput
from taskgate.providers.catalog import PRESETS, ResolvedProvider
from taskgate.providers.openai_compat import OpenAICompatAdapter, build_body, parse_completion, parse_images
from tests.fakes import openai_wire
from tests.fakes.provider import REJECTED_MODEL, Behaviour, FakeProvider
from tests.fakes.raw_sse import raw_sse_upstream
from tests.harness import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = [{"role": "user", "content": "Say hello"}]
TOOLS = [
    {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "clock", "parameters": {"type": "object", "properties": {}}}},
]


def make_adapter(base_url: str, preset: str = "openai", timeout_s: float = 10.0) -> OpenAICompatAdapter:
    resolved = ResolvedProvider(preset=PRESETS[preset], base_url=base_url, api_key="sk-test")
    return OpenAICompatAdapter(resolved, timeout_s=timeout_s)


@pytest_asyncio.fixture
async def adapter(fake: FakeProvider) -> AsyncIterator[OpenAICompatAdapter]:
    adapter = make_adapter(fake.openai_base_url)
    yield adapter
    await adapter.aclose()


async def collect(adapter: OpenAICompatAdapter, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in adapter.stream(request)]


async def test_complete_passes_the_body_through(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    options = {"temperature": 0.3, "max_tokens": 50, "seed": 7, "logprobs": True, "reasoning_effort": "low",
               "stop": ["END"], "user": "u-1", "timeout": 5}
    request = ChatRequest(model="gpt-a", messages=USER, tools=TOOLS, tool_choice="auto", options=options,
                          extra_headers={"x-trace": "abc"})
    response = await adapter.complete(request)
    assert response.text == fake.default_text("gpt-a")
    assert response.finish_reason == "stop"
    assert response.model == "gpt-a"
    sent = fake.requests[-1]
    assert sent.path == "/openai/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["x-trace"] == "abc"
    expected = {k: v for k, v in options.items() if k != "timeout"}
    assert sent.json == {"model": "gpt-a", "messages": USER, "tools": TOOLS, "tool_choice": "auto", **expected}


async def test_usage_fields_are_mapped(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("gpt-u", Behaviour(text="hi", usage={
        "prompt_tokens": 40, "completion_tokens": 12,
        "completion_tokens_details": {"reasoning_tokens": 5}, "prompt_tokens_details": {"cached_tokens": 30},
    }))
    usage = (await adapter.complete(ChatRequest(model="gpt-u", messages=USER))).usage
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.cache_read_tokens) == (40, 12, 5, 30)


async def test_structured_output_uses_response_format(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    request = ChatRequest(model="gpt-s", messages=USER, structured=StructuredOutput(schema, "answer"))
    response = await adapter.complete(request)
    assert fake.requests[-1].json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert isinstance(orjson.loads(response.text)["n"], int)


async def test_complete_tool_calls(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("gpt-t", Behaviour(tool_calls=[("weather", {"city": "Oslo"}), ("clock", {})]))
    response = await adapter.complete(ChatRequest(model="gpt-t", messages=USER, tools=TOOLS))
    assert response.finish_reason == "tool_calls"
    assert [(c.name, orjson.loads(c.arguments)) for c in response.tool_calls] == [
        ("weather", {"city": "Oslo"}), ("clock", {}),
    ]
    assert all(c.id for c in response.tool_calls)


async def test_refusal_is_reported_as_content_filter() -> None:
    data = {"choices": [{"message": {"content": None, "refusal": "I can't help"}, "finish_reason": "stop"}]}
    assert parse_completion(data, "openai").finish_reason == "content_filter"


async def test_stream_text_finish_and_usage(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    chunks = await collect(adapter, ChatRequest(model="gpt-b", messages=USER, options={"stream_options": {"x": 1}}))
    assert "".join(c.text for c in chunks) == fake.default_text("gpt-b")
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens > 0
    assert chunks[-1].usage.input_tokens > 0
    body = fake.requests[-1].json
    assert body["stream"] is True
    assert body["stream_options"] == {"x": 1, "include_usage": True}


async def test_stream_options_are_not_sent_without_streaming(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    options = {"stream_options": {"x": 1}, "stream": True}
    await adapter.complete(ChatRequest(model="gpt-b", messages=USER, options=options))
    assert "stream_options" not in fake.requests[-1].json and "stream" not in fake.requests[-1].json


async def test_stream_tool_call_fragments(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("gpt-st", Behaviour(tool_calls=[("weather", {"city": "Oslo Norway"}), ("clock", {"tz": "UTC"})]))
    chunks = await collect(adapter, ChatRequest(model="gpt-st", messages=USER, tools=TOOLS))
    tool_chunks = [c for c in chunks if c.tool_index is not None]
    firsts = [(c.tool_index, c.tool_name) for c in tool_chunks if c.tool_id]
    assert firsts == [(0, "weather"), (1, "clock")]
    assert all(c.tool_id is None and c.tool_name is None for c in tool_chunks if not c.tool_id)
    arguments = {i: "".join(c.tool_arguments for c in tool_chunks if c.tool_index == i) for i in (0, 1)}
    assert orjson.loads(arguments[0]) == {"city": "Oslo Norway"}
    assert orjson.loads(arguments[1]) == {"tz": "UTC"}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_api_key_auth_header(fake: FakeProvider) -> None:
    adapter = make_adapter(fake.openai_base_url, preset="azure")
    try:
        with pytest.raises(ProviderError, match="credentials") as caught:
            await adapter.complete(ChatRequest(model="gpt-z", messages=USER))
    finally:
        await adapter.aclose()
    assert caught.value.upstream_status == 401
    headers = fake.requests[-1].headers
    assert headers["api-key"] == "sk-test"
    assert "authorization" not in headers


@pytest.mark.parametrize(("status", "error_type"), [
    (429, UpstreamRateLimitedError), (500, UpstreamUnavailableError), (503, UpstreamUnavailableError),
])
@pytest.mark.parametrize("streaming", [False, True])
async def test_status_errors_are_mapped_with_the_upstream_message(
    fake: FakeProvider, adapter: OpenAICompatAdapter, status: int, error_type: type, streaming: bool
) -> None:
    fake.script("gpt-e", Behaviour(status=status))
    request = ChatRequest(model="gpt-e", messages=USER)
    with pytest.raises(error_type) as caught:
        await (collect(adapter, request) if streaming else adapter.complete(request))
    upstream_message = orjson.loads(openai_wire.error_body(status))["error"]["message"]
    assert upstream_message in caught.value.detail
    assert isinstance(caught.value, ProviderError)  # the router falls back on it


@pytest.mark.parametrize("streaming", [False, True])
async def test_unknown_model_is_rejected_not_retried(adapter: OpenAICompatAdapter, streaming: bool) -> None:
    request = ChatRequest(model=REJECTED_MODEL, messages=USER)
    with pytest.raises(ModelRejectedError, match="does not exist") as caught:
        await (collect(adapter, request) if streaming else adapter.complete(request))
    assert not isinstance(caught.value, ProviderError)  # the router does not fall back on it


@pytest.mark.parametrize("streaming", [False, True])
async def test_timeout_option_raises_upstream_timeout(
    fake: FakeProvider, adapter: OpenAICompatAdapter, streaming: bool
) -> None:
    fake.script("gpt-slow", Behaviour(delay_s=3))
    request = ChatRequest(model="gpt-slow", messages=USER, options={"timeout": 0.2})
    with pytest.raises(UpstreamTimeoutError):
        await (collect(adapter, request) if streaming else adapter.complete(request))


async def test_default_timeout_comes_from_the_adapter(fake: FakeProvider) -> None:
    fake.script("gpt-slow2", Behaviour(delay_s=3))
    adapter = make_adapter(fake.openai_base_url, timeout_s=0.2)
    try:
        with pytest.raises(UpstreamTimeoutError):
            await adapter.complete(ChatRequest(model="gpt-slow2", messages=USER))
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("streaming", [False, True])
async def test_connection_refused_is_a_retriable_provider_error(streaming: bool) -> None:
    adapter = make_adapter(f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    request = ChatRequest(model="gpt-x", messages=USER)
    try:
        with pytest.raises(ProviderError, match="cannot reach") as caught:
            await (collect(adapter, request) if streaming else adapter.complete(request))
    finally:
        await adapter.aclose()
    assert type(caught.value) is ProviderError  # the router falls back on it


@pytest.mark.parametrize("raw", [b"<html>oops</html>", b'{"id": "x", "choices": []}', b"[1, 2]"])
async def test_malformed_body_is_a_protocol_error(fake: FakeProvider, adapter: OpenAICompatAdapter, raw: bytes) -> None:
    fake.script("gpt-m", Behaviour(raw_body=raw))
    with pytest.raises(UpstreamProtocolError):
        await adapter.complete(ChatRequest(model="gpt-m", messages=USER))


@pytest.mark.parametrize("streaming", [False, True])
async def test_malformed_usage_is_a_protocol_error(
    fake: FakeProvider, adapter: OpenAICompatAdapter, streaming: bool
) -> None:
    fake.script("gpt-mu", Behaviour(usage={"prompt_tokens": "many", "total_tokens": 1}))
    request = ChatRequest(model="gpt-mu", messages=USER)
    with pytest.raises(UpstreamProtocolError):
        await (collect(adapter, request) if streaming else adapter.complete(request))


async def test_json_body_instead_of_a_stream_is_a_protocol_error(
    fake: FakeProvider, adapter: OpenAICompatAdapter
) -> None:
    fake.script("gpt-mj", Behaviour(raw_body=b'{"error": {"message": "streaming disabled"}}'))
    with pytest.raises(UpstreamProtocolError, match="streaming disabled"):
        await collect(adapter, ChatRequest(model="gpt-mj", messages=USER))


async def test_stream_cut_midway_ended_early(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("gpt-cut", Behaviour(text="one two three four five six", cut_after=3))
    seen: list[ChatChunk] = []
    with pytest.raises(UpstreamProtocolError, match="stream ended early"):
        async for chunk in adapter.stream(ChatRequest(model="gpt-cut", messages=USER)):
            seen.append(chunk)
    assert "".join(c.text for c in seen) == "one two "


async def test_in_stream_error_event_is_mapped(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("gpt-fail", Behaviour(text="one two three four", fail_after=2))
    with pytest.raises(UpstreamUnavailableError, match="server had an error"):
        await collect(adapter, ChatRequest(model="gpt-fail", messages=USER))


def _text_event(text: str) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-burst",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


@pytest_asyncio.fixture
async def burst_upstream() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An upstream that sends the first item of its `body` (set by the test), then the rest in one
    write, so the adapter receives a lead-in and then every other event in one read."""
    body: list[bytes] = []
    async with raw_sse_upstream("/chat/completions", body, lead=1) as url:
        yield url, body


async def test_text_that_arrives_together_goes_on_as_one_piece(burst_upstream: tuple[str, list[bytes]]) -> None:
    url, body = burst_upstream
    finish = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-burst",
              "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body += [_text_event("Hi. "), _text_event("Hel"), _text_event("lo, "), _text_event("world"),
             b"data: " + orjson.dumps(finish) + b"\n\n", b"data: [DONE]\n\n"]
    adapter = make_adapter(url)
    try:
        chunks = await collect(adapter, ChatRequest(model="gpt-burst", messages=USER))
    finally:
        await adapter.aclose()
    # The first output goes on alone, at once; after it, what one read delivered is one piece.
    assert [(c.text, c.finish_reason) for c in chunks] == [("Hi. ", None), ("Hello, world", None), ("", "stop")]


async def test_an_error_in_a_burst_comes_after_the_text_before_it(burst_upstream: tuple[str, list[bytes]]) -> None:
    """The text ahead of an in-stream error was output: the caller must see it before the error, or
    it would take a failure after output for one before it."""
    url, body = burst_upstream
    error = b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    body += [_text_event("zero "), _text_event("one "), _text_event("two "), error]
    adapter = make_adapter(url)
    seen: list[ChatChunk] = []
    try:
        with pytest.raises(UpstreamUnavailableError, match="boom"):
            async for chunk in adapter.stream(ChatRequest(model="gpt-burst", messages=USER)):
                seen.append(chunk)
    finally:
        await adapter.aclose()
    assert [c.text for c in seen] == ["zero ", "one two "]


async def test_consumer_aclose_disconnects_the_upstream(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("gpt-long", Behaviour(text="word " * 200, event_delay_s=0.02))
    stream = adapter.stream(ChatRequest(model="gpt-long", messages=USER))
    first = [await anext(stream), await anext(stream)]
    assert "".join(c.text for c in first).startswith("word")
    await stream.aclose()
    assert await asyncio.to_thread(fake.wait_disconnects, 1, 10.0)


async def test_cancelled_consumer_disconnects_the_upstream(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("gpt-long2", Behaviour(text="word " * 200, event_delay_s=0.02))
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in adapter.stream(ChatRequest(model="gpt-long2", messages=USER)):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.wait_disconnects, 1, 10.0)


async def test_pool_survives_many_sequential_streams(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    for _ in range(5):
        chunks = await collect(adapter, ChatRequest(model="gpt-seq", messages=USER))
        assert "".join(c.text for c in chunks) == fake.default_text("gpt-seq")
    assert fake.disconnects == 0


async def test_embeddings(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    response = await adapter.embed("emb-1", ["alpha", "beta gamma"], {"dimensions": 4, "timeout": 5})
    assert response.vectors == [openai_wire.embedding_vector("alpha", 4), openai_wire.embedding_vector("beta gamma", 4)]
    assert response.usage.input_tokens > 0
    assert response.model == "emb-1"
    sent = fake.requests[-1]
    assert sent.path == "/openai/v1/embeddings"
    assert sent.json == {"model": "emb-1", "input": ["alpha", "beta gamma"], "dimensions": 4}


async def test_base64_embeddings_are_decoded(adapter: OpenAICompatAdapter) -> None:
    response = await adapter.embed("emb-1", ["alpha"], {"dimensions": 3, "encoding_format": "base64"})
    assert response.vectors[0] == pytest.approx(openai_wire.embedding_vector("alpha", 3), rel=1e-6)


async def test_embedding_errors_are_mapped(fake: FakeProvider, adapter: OpenAICompatAdapter) -> None:
    fake.script("emb-2", Behaviour(status=429))
    with pytest.raises(UpstreamRateLimitedError):
        await adapter.embed("emb-2", ["x"], {})
    with pytest.raises(ModelRejectedError):
        await adapter.embed(REJECTED_MODEL, ["x"], {})


async def test_only_a_preset_that_refuses_an_option_turns_it_away() -> None:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], options={"top_k": 5})
    assert build_body(request, "vllm", PRESETS["vllm"].refused_options)["top_k"] == 5  # vLLM takes top_k
    with pytest.raises(BadRequestError, match="top_k"):
        build_body(request, "openai", PRESETS["openai"].refused_options)


@pytest.mark.parametrize("data", [
    {"data": ["not an object"]}, {"data": [{"url": "https://x/a.png"}], "usage": {"input_tokens": "many"}},
    {"data": [{"b64_json": 7}]}, {"data": []}, {"data": None}, {}, [],
])
def test_an_odd_images_answer_is_a_protocol_error(data: object) -> None:
    """Whatever a vendor's images answer holds, it is a clear upstream error (502), never a crash."""
    with pytest.raises(UpstreamProtocolError):
        parse_images(data, "openai")
