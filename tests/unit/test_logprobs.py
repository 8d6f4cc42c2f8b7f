"""Log probabilities on their way from the OpenAI wire to the caller: parsed from a completion and
from stream chunks, kept through the merging of pieces, and gathered whole from a stream."""

from __future__ import annotations

from typing import Any

import orjson

from taskgate.providers.base import ChatChunk, ChunkCollector, coalesce
from taskgate.providers.openai_compat import _StreamReader, parse_completion
from taskgate.providers.upstream_http import SSEEvent


def entry(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.5, "bytes": list(token.encode()), "top_logprobs": []}


def test_a_completion_keeps_its_token_logprobs() -> None:
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hi you"}, "finish_reason": "stop",
              "logprobs": {"content": [entry("Hi"), entry(" you")], "refusal": None}}
    response = parse_completion({"choices": [choice], "model": "m"}, "openai")
    assert response.logprobs == [entry("Hi"), entry(" you")]
    assert parse_completion({"choices": [{**choice, "logprobs": None}]}, "openai").logprobs is None


def test_stream_pieces_carry_their_logprobs_and_merge_in_order() -> None:
    reader = _StreamReader("openai")
    events = [SSEEvent("message", orjson.dumps({"choices": [{"index": 0, "delta": {"content": token},
                                                              "logprobs": {"content": [entry(token)]}}]}))
              for token in ("a", "b", "c")]
    pieces = [piece for event in events for piece in reader.feed(event)]
    assert [piece.logprobs for piece in pieces] == [[entry("a")], [entry("b")], [entry("c")]]
    [merged] = coalesce(pieces)
    assert merged.text == "abc" and merged.logprobs == [entry("a"), entry("b"), entry("c")]


def test_merging_pieces_without_logprobs_leaves_them_absent() -> None:
    [merged] = coalesce([ChatChunk(text="a"), ChatChunk(text="b")])
    assert merged.text == "ab" and merged.logprobs is None
    merged, finish = coalesce([ChatChunk(text="a"), ChatChunk(text="b", logprobs=[entry("b")]),
                               ChatChunk(finish_reason="stop")])
    assert merged.logprobs == [entry("b")] and finish.finish_reason == "stop"


def test_a_collected_stream_has_every_logprob() -> None:
    collector = ChunkCollector()
    for chunk in (ChatChunk(text="a", logprobs=[entry("a")]), ChatChunk(text="b", logprobs=[entry("b")]),
                  ChatChunk(finish_reason="stop")):
        collector.add(chunk)
    assert collector.response().logprobs == [entry("a"), entry("b")]
    plain = ChunkCollector()
    plain.add(ChatChunk(text="a"))
    assert plain.response().logprobs is None
