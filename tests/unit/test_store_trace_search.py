"""The UI's trace listing in the store, on SQLite and Postgres: filters, time paging, and the walk's
bound (a filter that matches little or nothing reads at most MAX_WALKED spans per page)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskgate.store import SqlStore, trace_search
from taskgate.store.base import SpanRecord, TraceFilter

START = datetime(2026, 6, 1, tzinfo=UTC)


def _span(project: str, index: int, **fields: object) -> SpanRecord:
    start = START + timedelta(seconds=index)
    values: dict[str, object] = {"name": f"call-{index}", "function_name": f"fn-{index % 3}",
                                 "model_used": "openai/gpt-4o-mini", "tags": {"customer": f"c{index % 4}"},
                                 "cost": 0.001, **fields}
    return SpanRecord(id=f"s{index}", trace_id=f"t{index}", project_id=project, start_time=start,
                      end_time=start + timedelta(milliseconds=5), **values)  # type: ignore[arg-type]


async def _all_pages(store: SqlStore, project: str, which: TraceFilter, limit: int) -> list[list[str]]:
    pages, before = [], None
    while True:
        found, before = await store.find_traces(project, which, before, limit)
        pages.append([summary.id for summary in found])
        if before is None:
            return pages


async def test_filters_and_pages_newest_first(store: SqlStore, project: str) -> None:
    await store.write_spans([_span(project, index) for index in range(30)]
                            + [_span(project, 30, status="error", error="boom", function_name="fn-9")])
    every = await _all_pages(store, project, TraceFilter(), 7)
    assert [trace for page in every for trace in page] == [f"t{index}" for index in range(30, -1, -1)]
    by_function = await _all_pages(store, project, TraceFilter(function="fn-1"), 4)
    assert [trace for page in by_function for trace in page] == [f"t{i}" for i in range(28, -1, -1) if i % 3 == 1]
    by_tag = await _all_pages(store, project, TraceFilter(tag=("customer", "c2")), 100)
    assert by_tag == [[f"t{i}" for i in range(30, -1, -1) if i % 4 == 2]]
    assert await _all_pages(store, project, TraceFilter(status="error"), 10) == [["t30"]]
    assert await _all_pages(store, project, TraceFilter(model="nope/none"), 10) == [[]]
    since = TraceFilter(since=START + timedelta(seconds=25), until=START + timedelta(seconds=28))
    assert await _all_pages(store, project, since, 10) == [["t27", "t26", "t25"]]
    filtered = TraceFilter(since=START + timedelta(seconds=20), function="fn-2")
    found, _ = await store.find_traces(project, filtered, None, 10)
    assert [summary.id for summary in found] == ["t29", "t26", "t23", "t20"]
    assert found[0].cost == pytest.approx(0.001) and found[0].span_count == 1


async def test_a_rare_value_is_walked_to_in_bounded_pages(store: SqlStore, project: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_search, "MAX_WALKED", 20)
    monkeypatch.setattr(trace_search, "WINDOW", 10)
    await store.write_spans([_span(project, index, tags={"customer": "rare" if index == 3 else "common"})
                             for index in range(60)])
    pages = await _all_pages(store, project, TraceFilter(tag=("customer", "rare")), 10)
    # 20 spans read per page: 59..40, 39..20, then 19..0 finds it; a full last window cannot tell that
    # nothing older is left, so one more (empty) page says so
    assert pages == [[], [], ["t3"], []]
    assert await _all_pages(store, project, TraceFilter(tag=("customer", "absent")), 10) == [[], [], [], []]
