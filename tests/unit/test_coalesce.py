"""Merging the stream pieces that one network read delivered, and reading a stream's reads."""

from __future__ import annotations

import pytest

from taskgate.errors import ProviderError
from taskgate.providers.base import ChatChunk, PieceReader, Usage, coalesce


class Events:
    """A fake stream's events: "role" has no piece, "done" finishes, "boom" is an upstream error."""

    def __init__(self) -> None:
        self.decoded: list[str] = []
        self.done = False

    def pieces_of(self, event: str) -> list[ChatChunk]:
        self.decoded.append(event)
        if event == "boom":
            raise ProviderError("upstream fell over")
        if event == "done":
            self.done = True
            return [ChatChunk(finish_reason="stop")]
        return [] if event == "role" else [ChatChunk(text=event)]

    def reader(self) -> PieceReader[str]:
        return PieceReader(self.pieces_of, lambda: self.done)


def test_the_first_output_goes_on_as_soon_as_its_event_is_decoded() -> None:
    events = Events()
    reader = events.reader()
    first_read = reader.read(["role", "a", "b", "c"])
    assert next(first_read).text == "a"
    assert events.decoded == ["role", "a"]  # "b" and "c" are still waiting: the client has "a" now
    assert [piece.text for piece in first_read] == ["bc"]  # the rest of that read is merged
    assert [piece.text for piece in reader.read(["d", "e", "f"])] == ["def"]  # and so are later reads


def test_reads_without_output_keep_waiting_for_the_first() -> None:
    events = Events()
    reader = events.reader()
    assert list(reader.read(["role"])) == []
    assert [piece.text for piece in reader.read(["a", "b", "c"])] == ["a", "bc"]
    assert [piece.text for piece in reader.read(["d", "e"])] == ["de"]


def test_an_error_before_any_output_is_raised_at_once() -> None:
    events = Events()
    with pytest.raises(ProviderError, match="fell over"):
        list(events.reader().read(["role", "boom", "never"]))
    assert events.decoded == ["role", "boom"]


def test_an_error_in_a_merged_read_comes_after_the_text_before_it() -> None:
    events = Events()
    reader = events.reader()
    first_read = reader.read(["a", "b", "c", "boom", "never"])
    assert [next(first_read).text, next(first_read).text] == ["a", "bc"]
    with pytest.raises(ProviderError, match="fell over"):
        next(first_read)
    assert "never" not in events.decoded


def test_reading_stops_at_the_event_that_finishes_the_stream() -> None:
    for first in (["a", "done", "junk"], ["role", "done", "junk"]):
        events = Events()
        assert [(piece.text, piece.finish_reason) for piece in events.reader().read(first)][-1] == ("", "stop")
        assert "junk" not in events.decoded
    events = Events()
    reader = events.reader()
    list(reader.read(["a"]))
    assert [(piece.text, piece.finish_reason) for piece in reader.read(["b", "done", "junk"])] == [
        ("b", None), ("", "stop")]
    assert "junk" not in events.decoded


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
