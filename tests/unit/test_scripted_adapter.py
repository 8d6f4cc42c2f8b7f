"""ScriptedAdapter, the in-memory adapter the engine's specification runs on: it must answer what it
is given, in order, whether asked for a whole answer or a stream, and report what it was asked."""

from __future__ import annotations

import pytest

from taskgate.errors import ModelRejectedError, ProviderError, UpstreamUnavailableError
from taskgate.providers.base import ChatChunk, ChatRequest, ChatResponse, ToolCall, Usage
from taskgate.providers.scripted import ScriptedAdapter, chunks_of, collect

pytestmark = pytest.mark.asyncio(loop_scope="session")


def request(text: str = "hi") -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}])


async def streamed(adapter: ScriptedAdapter, asked: ChatRequest | None = None) -> list[ChatChunk]:
    return [chunk async for chunk in adapter.stream(asked or request())]


WITH_TOOL = ChatResponse(
    text="Let me look that up",
    tool_calls=[ToolCall(id="c1", name="weather", arguments='{"city": "Oslo"}')],
    finish_reason="tool_calls",
    usage=Usage(input_tokens=12, output_tokens=4),
    notes=["a note"],
)


async def test_each_request_takes_the_next_step_in_order() -> None:
    adapter = ScriptedAdapter([ChatResponse(text="one"), ChatResponse(text="two")])
    adapter.add(ChatResponse(text="three"))
    answers = [(await adapter.complete(request(str(n)))).text for n in range(3)]
    assert answers == ["one", "two", "three"]
    assert [asked.messages[0]["content"] for asked in adapter.requests] == ["0", "1", "2"]


async def test_an_empty_script_answers_with_a_provider_error_so_the_router_falls_back() -> None:
    adapter = ScriptedAdapter()
    with pytest.raises(ProviderError, match="no answer left"):
        await adapter.complete(request())
    with pytest.raises(ProviderError, match="no answer left"):
        await streamed(adapter)
    assert len(adapter.requests) == 2


async def test_an_error_step_is_raised_by_complete_and_by_stream() -> None:
    adapter = ScriptedAdapter([ModelRejectedError("no such model"), ModelRejectedError("still none")])
    with pytest.raises(ModelRejectedError, match="no such model"):
        await adapter.complete(request())
    with pytest.raises(ModelRejectedError, match="still none"):
        await streamed(adapter)


async def test_a_response_streams_as_word_pieces_then_its_tool_calls_and_end() -> None:
    chunks = await streamed(ScriptedAdapter([WITH_TOOL]))
    *words, tool, end = chunks
    assert [chunk.text for chunk in words] == ["Let", " me", " look", " that", " up"]
    assert (tool.tool_index, tool.tool_id, tool.tool_name) == (0, "c1", "weather")
    assert tool.tool_arguments == '{"city": "Oslo"}'
    assert (end.finish_reason, end.usage, tuple(end.notes)) == ("tool_calls", WITH_TOOL.usage, ("a note",))


async def test_pieces_asked_for_whole_are_collected_into_the_response_they_stream() -> None:
    assert collect(chunks_of(WITH_TOOL)) == WITH_TOOL
    adapter = ScriptedAdapter([chunks_of(WITH_TOOL)])
    assert await adapter.complete(request()) == WITH_TOOL


async def test_an_error_among_pieces_fails_the_stream_after_the_pieces_before_it() -> None:
    adapter = ScriptedAdapter([[ChatChunk(text="Hel"), UpstreamUnavailableError("cut"), ChatChunk(text="lo")]])
    seen: list[str] = []
    with pytest.raises(UpstreamUnavailableError, match="cut"):
        async for chunk in adapter.stream(request()):
            seen.append(chunk.text)
    assert seen == ["Hel"]
    assert adapter.streams_open == 0


async def test_a_request_is_kept_as_it_was_received() -> None:
    adapter = ScriptedAdapter([ChatResponse(text="ok")])
    asked = request()
    await adapter.complete(asked)
    asked.messages.append({"role": "user", "content": "added by the caller afterwards"})
    assert adapter.requests[0].messages == [{"role": "user", "content": "hi"}]


async def test_a_stream_left_early_is_closed() -> None:
    adapter = ScriptedAdapter([ChatResponse(text="a few words here")])
    chunks = adapter.stream(request())
    await anext(chunks)
    assert adapter.streams_open == 1
    await chunks.aclose()
    assert adapter.streams_open == 0


async def test_embeddings_give_one_distinct_vector_per_input() -> None:
    adapter = ScriptedAdapter()
    embedded = await adapter.embed("e", ["cat", "dog", "cat"], {})
    assert len(embedded.vectors) == 3 and embedded.vectors[0] == embedded.vectors[2] != embedded.vectors[1]
    assert (embedded.model, embedded.usage.input_tokens, adapter.embeddings) == ("e", 9, [["cat", "dog", "cat"]])

