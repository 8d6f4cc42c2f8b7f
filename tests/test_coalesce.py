"""Merging the stream pieces that one network read delivered."""

from __future__ import annotations

from taskgate.providers.base import ChatChunk, Usage, coalesce


def test_neighbouring_text_merges() -> None:
    assert [c.text for c in coalesce([ChatChunk(text="a"), ChatChunk(text="b"), ChatChunk(text="c")])] == ["abc"]


def test_a_finish_or_usage_piece_is_never_merged() -> None:
    pieces = [ChatChunk(text="a"), ChatChunk(finish_reason="stop"), ChatChunk(text="b"),
              ChatChunk(usage=Usage(input_tokens=1))]
    merged = coalesce(pieces)
    assert [(c.text, c.finish_reason, c.usage is not None) for c in merged] == [
        ("a", None, False), ("", "stop", False), ("b", None, False), ("", None, True)]


def test_arguments_join_their_own_call_only() -> None:
    pieces = [
        ChatChunk(tool_index=0, tool_id="t0", tool_name="weather"),
        ChatChunk(tool_index=0, tool_arguments='{"city":'),
        ChatChunk(tool_index=0, tool_arguments='"Oslo"}'),
        ChatChunk(tool_index=1, tool_id="t1", tool_name="clock"),  # a new call's head starts a new piece
        ChatChunk(tool_index=1, tool_arguments="{}"),
        ChatChunk(tool_index=0, tool_arguments=""),  # back to call 0: not glued onto call 1
    ]
    merged = coalesce(pieces)
    assert [(c.tool_index, c.tool_id, c.tool_name, c.tool_arguments) for c in merged] == [
        (0, "t0", "weather", '{"city":"Oslo"}'), (1, "t1", "clock", "{}"), (0, None, None, "")]


def test_text_and_tool_pieces_stay_apart() -> None:
    pieces = [ChatChunk(text="Let me check. "), ChatChunk(tool_index=0, tool_arguments="{}"), ChatChunk(text="x")]
    assert [(c.text, c.tool_index) for c in coalesce(pieces)] == [("Let me check. ", None), ("", 0), ("x", None)]
