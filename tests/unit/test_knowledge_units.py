"""The knowledge service's pure parts: chunking by size and overlap, metadata filters, and the
fusion of two rankings by reciprocal rank."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskgate.engine.knowledge.chunking import Chunking, split
from taskgate.engine.knowledge.filters import Filter, parse_filters, passes
from taskgate.engine.knowledge.service import _fused, _unit
from taskgate.errors import BadRequestError, UpstreamProtocolError
from taskgate.store.database import PGVECTOR_MIN_VERSION, _version_tuple


def test_short_text_is_one_chunk_and_blank_is_none() -> None:
    assert split("  hello world \n", Chunking(100, 10)) == ["hello world"]
    assert split(" \n\t ", Chunking(100, 10)) == []


def test_chunks_break_at_spaces_and_overlap() -> None:
    text = " ".join(f"w{n:03d}" for n in range(200))  # 999 characters
    pieces = split(text, Chunking(100, 20))
    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece.startswith("w") and len(piece.split()[-1]) == 4 for piece in pieces)  # no word cut
    for first, second in pairwise(pieces):
        assert first.split()[-1] in second.split()  # the overlap carries the last word over
    assert pieces[-1].endswith("w199")


@given(st.text(min_size=1, max_size=3000), st.integers(1, 400), st.integers(0, 399))
def test_every_character_is_in_some_chunk(text: str, size: int, overlap: int) -> None:
    chunking = Chunking(size, min(overlap, size - 1))
    pieces = split(text, chunking)
    assert all(0 < len(piece) <= size for piece in pieces)
    assert bool(pieces) == bool(text.strip())
    remaining = "".join(text.split())
    joined = "".join("".join(piece.split()) for piece in pieces)
    for character in set(remaining):
        assert character in joined


DOCUMENT = {"country": "se", "year": 2020, "score": 0.5, "flag": True, "tags": None}


@pytest.mark.parametrize(("field", "operation", "value", "expected"), [
    ("country", "=", "se", True), ("country", "=", "fr", False), ("missing", "=", "se", False),
    ("country", "!=", "fr", True), ("missing", "!=", "x", True), ("year", "=", 2020.0, True),
    ("flag", "=", 1, False), ("flag", "=", True, True), ("year", ">", 2019, True), ("year", "<", 2020, False),
    ("country", ">", "a", True), ("country", ">", 1, False), ("missing", "<", 5, False),
    ("year", "in", [2019, 2020], True), ("country", "in", ["fr"], False), ("missing", "in", [None], False),
    ("tags", "=", None, True), ("score", "<", 1, True),
])
def test_filters(field: str, operation: str, value: Any, expected: bool) -> None:
    assert passes(DOCUMENT, [Filter(field, operation, value)]) is expected


@pytest.mark.parametrize("raw", [
    "x", [1], [{"field": "a", "operation": "~", "value": 1}], [{"field": 1, "operation": "=", "value": 1}],
    [{"field": "a", "operation": "=", "value": {"b": 1}}], [{"field": "a", "operation": "in", "value": 1}],
    [{"field": "a", "operation": "<", "value": None}], [{"field": "a", "operation": "="}],
    [{"field": "a", "operation": "in", "value": list(range(1001))}],
])
def test_bad_filters_are_400(raw: Any) -> None:
    with pytest.raises(BadRequestError):
        parse_filters(raw)


def test_filters_and_together() -> None:
    filters = parse_filters([{"field": "country", "operation": "=", "value": "se"},
                             {"field": "year", "operation": ">", "value": 2020}])
    assert not passes(DOCUMENT, filters) and passes({**DOCUMENT, "year": 2021}, filters)
    assert parse_filters(None) == []


def test_fusion_lets_words_reorder_close_vector_ranks_only() -> None:
    fused = _fused([[1, 2, 3, 4, 5], [5, 6]])
    assert [chunk_id for chunk_id, _ in fused] == [1, 2, 3, 5, 4, 6]  # 5 shares words: past 4, not past 3
    assert dict(fused)[5] == pytest.approx(1 / 15 + 0.3 / 61)
    assert _fused([[1, 2], [2]])[0][0] == 1  # the vectors' first place stays first
    assert _fused([[], []]) == []


@pytest.mark.parametrize("values", [[3.0, 4.0], [1e300, 1e300], [-1e-300, 0.0], [0.0, 0.0], [5e38, -5e38, 1.0]])
def test_vectors_are_stored_unit_length_and_finite(values: list[float]) -> None:
    """Values past float32's range would be inf or NaN as float32, which the vector index refuses."""
    stored = np.frombuffer(_unit(values), dtype="<f4")
    assert stored.shape == (len(values),) and np.isfinite(stored).all()
    assert np.linalg.norm(stored) == pytest.approx(0.0 if not any(values) else 1.0, abs=1e-6)


@pytest.mark.parametrize("values", [[], [float("nan"), 1.0], [float("inf")], [[1.0, 2.0]]])
def test_an_empty_or_non_finite_vector_is_the_upstreams_fault(values: Any) -> None:
    with pytest.raises(UpstreamProtocolError):
        _unit(values)


@pytest.mark.parametrize(("version", "usable"), [("0.8.2", True), ("0.8.0", True), ("1.0", True), ("0.7.4", False),
                                                 ("0.5.1-dev", False), ("garbage", False)])
def test_pgvector_is_used_from_0_8_on(version: str, usable: bool) -> None:
    """Older pgvector has no iterative HNSW scans: filtering by base could leave a search short."""
    assert (_version_tuple(version) >= PGVECTOR_MIN_VERSION) is usable
