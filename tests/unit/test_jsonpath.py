"""The incremental JSON path parser: round trips on random JSON split at random points, plus edge cases."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskgate.api.v2.json_paths import JsonPathStream, JSONStreamError

Events = list[tuple[str, Any]]

# ---- reference: what the events of a value must be, computed by walking the value itself


def _key_segment(key: str) -> str:
    return re.sub(r"([\\.\[])", r"\\\1", key)


def reference_events(value: Any, path: str = "response") -> Iterator[tuple[str, Any]]:
    """One event per leaf in document order; strings whole, empty containers as {} / []."""
    if isinstance(value, dict):
        if not value:
            yield path, {}
        for key, item in value.items():
            yield from reference_events(item, f"{path}.{_key_segment(key)}")
    elif isinstance(value, list):
        if not value:
            yield path, []
        for index, item in enumerate(value):
            yield from reference_events(item, f"{path}[{index}]")
    else:
        yield path, value


def merge_string_fragments(events: Events) -> Events:
    """Join consecutive string fragments of one path (distinct values never share a path)."""
    merged: Events = []
    for path, delta in events:
        if merged and isinstance(delta, str) and merged[-1][0] == path and isinstance(merged[-1][1], str):
            merged[-1] = (path, merged[-1][1] + delta)
        else:
            merged.append((path, delta))
    return merged


def strictly_equal(a: Any, b: Any) -> bool:
    """Equality that also tells True from 1 and 1 from 1.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def parse_in_chunks(chunks: list[str], root: str = "response") -> tuple[Events, list[Events]]:
    parser = JsonPathStream(root)
    per_chunk = [parser.feed(chunk) for chunk in chunks]
    per_chunk.append(parser.finish())
    assert parser.done
    return [event for events in per_chunk for event in events], per_chunk


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


# ---- reference inverse: the value a list of events describes

_PATH_SEGMENT = re.compile(r"\.((?:[^\\.\[]|\\[\s\S])*)|\[(0|[1-9][0-9]*)\]").match
_KEY_UNESCAPE = re.compile(r"\\([\s\S])")


def assemble(events: Iterable[tuple[str, Any]], root: str = "response") -> Any:
    """Glue events back into the value they describe, the inverse of JsonPathStream (and strict, so
    that a round trip catches events that do not fit together).

    Rules: containers on the way to a path are created as the path says (`.key` an object, `[i]` an
    array, items arriving in order); a string delta is appended to the string already started at its
    path (the first fragment starts it); `{}` and `[]` put an empty container; any other scalar is set.
    Raises ValueError for a path outside `root`, out-of-order array items or conflicting events.
    """
    holder: list[Any] = []  # holder[0] becomes the root value
    cache: dict[str, list[str | int]] = {}
    strings: list[tuple[Any, str | int, _Fragments]] = []
    for path, delta in events:
        segments = cache.get(path)
        if segments is None:
            segments = cache[path] = _split_path(path, root)
        parent: Any = holder
        slot: str | int = 0
        for segment in segments:
            parent = _child(parent, slot, {} if isinstance(segment, str) else [])
            slot = segment
        current = _get(parent, slot)
        if isinstance(delta, str) and isinstance(current, _Fragments):
            current.append(delta)
            continue
        if current is not _MISSING:
            raise ValueError(f"conflicting events for {path!r}")
        if isinstance(delta, str):
            delta = _Fragments((delta,))
            strings.append((parent, slot, delta))
        elif isinstance(delta, dict | list):
            if delta:
                raise ValueError(f"a container delta must be empty, got {delta!r} for {path!r}")
            delta = {} if isinstance(delta, dict) else []
        _set(parent, slot, delta)
    if not holder:
        raise ValueError("no events to assemble")
    for parent, slot, fragments in strings:  # joined once at the end: gluing is linear, not quadratic
        parent[slot] = "".join(fragments)
    return holder[0]


_MISSING = object()


class _Fragments(list[str]):
    """The fragments of one string value while assembling."""


def _split_path(path: str, root: str) -> list[str | int]:
    """`response.a\\.b[2].c` -> ["a.b", 2, "c"]."""
    if not path.startswith(root):
        raise ValueError(f"path {path!r} is not under {root!r}")
    segments: list[str | int] = []
    i = len(root)
    while i < len(path):
        match = _PATH_SEGMENT(path, i)
        if match is None:
            raise ValueError(f"malformed path {path!r}")
        key, index = match.groups()
        segments.append(_KEY_UNESCAPE.sub(r"\1", key) if index is None else int(index))
        i = match.end()
    return segments


def _get(parent: Any, slot: str | int) -> Any:
    if isinstance(parent, dict):
        return parent.get(slot, _MISSING)
    assert isinstance(slot, int)  # _child made `parent` a list because the segment is an index
    if slot < len(parent):
        return parent[slot]
    if slot == len(parent):
        return _MISSING
    raise ValueError(f"array item {slot} arrived before item {len(parent)}")


def _set(parent: Any, slot: str | int, value: Any) -> None:
    if isinstance(parent, list) and slot == len(parent):
        parent.append(value)
    else:
        parent[slot] = value


def _child(parent: Any, slot: str | int, empty: dict[str, Any] | list[Any]) -> Any:
    """The container at parent[slot], created as `empty` when absent."""
    current = _get(parent, slot)
    if current is _MISSING:
        _set(parent, slot, empty)
        return empty
    if type(current) is not type(empty):
        raise ValueError(f"conflicting events: expected a {type(empty).__name__} at {slot!r}")
    return current


# ---- property tests

awkward_chars = st.sampled_from(list('."\\[]/{}:, \n\t\r\b\f\x00\x1f\x7fé€😀\U0010ffff\u2028'))
text = st.text(st.one_of(st.characters(exclude_categories=["Cs"]), awkward_chars), max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.just(""),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(text, children, max_size=5),
        st.lists(st.lists(children, max_size=3), max_size=3),
    ),
    max_leaves=25,
)
dump_options = st.fixed_dictionaries(
    {"ensure_ascii": st.booleans(), "indent": st.one_of(st.none(), st.integers(0, 3), st.just("\t"))}
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, options=dump_options, data=st.data())
def test_random_json_in_random_chunks_round_trips(value: Any, options: dict[str, Any], data: st.DataObject):
    raw = json.dumps(value, **options)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=max(1, len(raw) // 2)), label="cuts")
    events, per_chunk = parse_in_chunks(split_at(raw, cuts))

    assert strictly_equal(assemble(events), value)
    expected = list(reference_events(value))
    merged = merge_string_fragments(events)
    assert [path for path, _ in merged] == [path for path, _ in expected]
    assert all(strictly_equal(got[1], want[1]) for got, want in zip(merged, expected, strict=True))
    # an empty fragment appears only for an empty string value (and scalars once: `merged` would differ)
    empty_paths = [path for path, delta in events if delta == "" and isinstance(delta, str)]
    assert empty_paths == [path for path, want in expected if want == "" and isinstance(want, str)]
    # characters of one string within one chunk come out as one delta
    for chunk_events in per_chunk:
        paths = [path for path, _ in chunk_events]
        assert all(a != b for a, b in itertools.pairwise(paths))


@settings(max_examples=60, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans())
def test_one_character_chunks(value: Any, ensure_ascii: bool):
    raw = json.dumps(value, ensure_ascii=ensure_ascii)
    events, _ = parse_in_chunks(list(raw))
    assert strictly_equal(assemble(events), value)


@settings(max_examples=100, deadline=None)
@given(value=json_values, root=st.sampled_from(["response", "out", "r"]))
def test_whole_text_in_one_chunk_with_any_root(value: Any, root: str):
    events, _ = parse_in_chunks([json.dumps(value)], root)
    assert all(path.startswith(root) for path, _ in events)
    assert strictly_equal(assemble(events, root), value)


# ---- the documented paths


def feed_all(*chunks: str, root: str = "response") -> Events:
    return parse_in_chunks(list(chunks), root)[0]


def test_docs_example_streams_fields_as_they_arrive():
    events = feed_all('{"name": "John', ' Doe", "ro', 'le": "Engineer"}')
    assert events == [("response.name", "John"), ("response.name", " Doe"), ("response.role", "Engineer")]


def test_nested_paths_from_the_docs():
    raw = json.dumps(
        {"people": [{"name": "Ada", "age": 36}], "metadata": {"created_at": "2024-01-01"}, "matrix": [[1], [2.5]]}
    )
    assert feed_all(raw) == [
        ("response.people[0].name", "Ada"),
        ("response.people[0].age", 36),
        ("response.metadata.created_at", "2024-01-01"),
        ("response.matrix[0][0]", 1),
        ("response.matrix[1][0]", 2.5),
    ]


def test_keys_are_dotted_and_only_path_syntax_is_escaped():
    value = {"some key": 1, "a.b": 2, "x[0]": 3, "back\\slash": 4, "": 5, "é": {'q"uote': 6}}
    events = feed_all(json.dumps(value))
    assert [path for path, _ in events] == [
        "response.some key",
        "response.a\\.b",
        "response.x\\[0]",
        "response.back\\\\slash",
        "response.",
        'response.é.q"uote',
    ]
    assert assemble(events) == value


def test_empty_containers_and_empty_strings_are_announced():
    events = feed_all('{"a": {}, "b": [], "c": "", "d": [[], {}]}')
    assert events == [
        ("response.a", {}),
        ("response.b", []),
        ("response.c", ""),
        ("response.d[0]", []),
        ("response.d[1]", {}),
    ]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('"hi"', "hi"),
        ('""', ""),
        ("true", True),
        ("false", False),
        ("null", None),
        ("-12", -12),
        ("0", 0),
        ("-0.5e-3", -0.0005),
        ("1E+2", 100.0),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("{}", {}),
        ("[]", []),
    ],
)
def test_root_scalars_and_containers(raw: str, value: Any):
    events = feed_all(" \n" + raw + " \t")
    assert strictly_equal(assemble(events), value)
    assert events[0][0] == "response"


def test_root_number_is_emitted_by_finish():
    parser = JsonPathStream()
    assert parser.feed("4") == []
    assert parser.feed("2") == []
    assert not parser.done
    assert parser.finish() == [("response", 42)]
    assert parser.done


def test_number_split_across_chunks_is_emitted_once_when_it_ends():
    parser = JsonPathStream()
    assert parser.feed("[12") == []
    assert parser.feed("3.") == []
    assert parser.feed("5, 7") == [("response[0]", 123.5)]
    assert parser.feed("]") == [("response[1]", 7)]
    assert parser.done


def test_literal_split_across_chunks():
    assert feed_all('{"ok": t', "r", 'ue, "n": nu', "ll}") == [("response.ok", True), ("response.n", None)]


# ---- escapes cut by chunk boundaries

ESCAPED = r'{"s": "a\"b\\c\/d\n\t\u00e9\ud83d\ude00\u20ac end", "k\u00e9y": "x"}'
DECODED = {"s": 'a"b\\c/d\n\té😀€ end', "kéy": "x"}


@pytest.mark.parametrize("cut", range(len(ESCAPED) + 1))
def test_escapes_split_at_every_position(cut: int):
    events = feed_all(ESCAPED[:cut], ESCAPED[cut:])
    assert assemble(events) == DECODED
    assert all(delta != "" for _, delta in events)


def test_escapes_fed_one_character_at_a_time():
    events = feed_all(*ESCAPED)
    assert assemble(events) == DECODED
    # nothing is emitted for a chunk that holds only part of an escape
    assert "".join(delta for path, delta in events if path == "response.s") == DECODED["s"]


def test_surrogate_pair_split_between_its_halves():
    parser = JsonPathStream()
    assert parser.feed('"x\\ud83d') == [("response", "x")]
    assert parser.feed("\\ude00y") == [("response", "😀y")]
    assert parser.feed('"') == []
    assert parser.done


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (r'"\ud83dx"', "\ufffdx"),
        (r'"\ude00"', "\ufffd"),
        (r'"\ud83d\ud83d\ude00"', "\ufffd😀"),
        (r'"\ud83d\n"', "\ufffd\n"),
        (r'"\ud83d"', "\ufffd"),
    ],
)
def test_lone_surrogates_become_replacement_characters(raw: str, decoded: str):
    assert assemble(feed_all(raw)) == decoded


# ---- invalid input


@pytest.mark.parametrize(
    ("raw", "position"),
    [
        ('{"a" 1}', 5),
        ('{"a": 1,}', 8),
        ("[1,]", 3),
        ("[1 2]", 3),
        ("{]", 1),
        ("[}", 1),
        ("[1}", 2),
        ('{"a": 1]', 7),
        ("trux", 3),
        ("nul l", 3),
        ("01", 0),
        ("[1.]", 1),
        ("[-]", 1),
        ("[1e]", 1),
        ("[1-2]", 1),
        ('"a\\x"', 2),
        ('"\\u12g4"', 1),
        ('"a\nb"', 2),
        ("{} x", 3),
        ("{}{}", 2),
        ("{'a': 1}", 1),
        (",", 0),
        ("]", 0),
        ("{1: 2}", 1),
        ("Hello", 0),
    ],
)
@pytest.mark.parametrize("one_char_chunks", [True, False])
def test_invalid_json_raises_with_a_position(raw: str, position: int, one_char_chunks: bool):
    parser = JsonPathStream()
    with pytest.raises(JSONStreamError) as caught:
        for chunk in raw if one_char_chunks else [raw]:  # the same error however the text is chunked
            parser.feed(chunk)
        parser.finish()
    assert caught.value.position == position
    assert f"at position {position}" in str(caught.value)
    with pytest.raises(JSONStreamError):
        parser.feed(" ")  # a failed parser stays failed


@pytest.mark.parametrize("raw", ["", "   ", '{"a": "b', "[1", "[1,", '{"a"', '{"a":', "tr", '"abc\\u00', "{"])
def test_finish_rejects_incomplete_input(raw: str):
    parser = JsonPathStream()
    parser.feed(raw)
    assert not parser.done
    with pytest.raises(JSONStreamError, match="incomplete"):
        parser.finish()


def test_json_stream_error_is_a_value_error():
    with pytest.raises(ValueError):
        JsonPathStream().feed("}")


def test_number_too_long_for_int_is_a_stream_error():
    with pytest.raises(JSONStreamError, match="number too long"):
        feed_all("[" + "9" * 5000 + "]")


# ---- assemble's own rules


def test_assemble_concatenates_strings_and_sets_scalars():
    events = [("out.a", "he"), ("out.b[0]", 1), ("out.a", "llo"), ("out.b[1]", None), ("out.c", {})]
    assert assemble(events, root="out") == {"a": "hello", "b": [1, None], "c": {}}


@pytest.mark.parametrize(
    "events",
    [
        [],
        [("other.a", 1)],
        [("response.a", 1), ("response.a", 2)],
        [("response.a", 1), ("response.a.b", 2)],
        [("response.a[1]", 1)],
        [("response.a", {"x": 1})],
        [("response[x]", 1)],
    ],
)
def test_assemble_rejects_inconsistent_events(events: Events):
    with pytest.raises(ValueError):
        assemble(events)
