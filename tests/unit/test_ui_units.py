"""The UI's pure parts: session cookies and CSRF tokens, values shown as escaped HTML, the span
waterfall's layout, and the revision diff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskgate.store.base import FunctionDefinition, RevisionRecord, SpanRecord
from taskgate.ui.display import CLIP_CHARS, MAX_ITEMS, value_html
from taskgate.ui.functions import revision_diff
from taskgate.ui.sessions import SessionSigner
from taskgate.ui.traces import waterfall

NOW = 1_800_000_000.0


def test_a_session_reads_back_until_it_expires() -> None:
    signer = SessionSigner("secret", lifetime_s=60)
    session, cookie = signer.open("project", "digest", now=NOW)
    assert signer.read(cookie, now=NOW + 59) == session
    assert signer.read(cookie, now=NOW + 60) is None


def test_a_session_s_row_id_is_a_digest_of_its_nonce_and_differs_per_session() -> None:
    """The store keeps the digest: a leaked table names no cookie's nonce (and so no CSRF token)."""
    signer = SessionSigner("secret")
    first, _ = signer.open("project", "digest", now=NOW)
    second, _ = signer.open("project", "digest", now=NOW)
    assert first.record_id != second.record_id and len(first.record_id) == 64
    assert first.nonce not in first.record_id


def test_a_cookie_signed_otherwise_or_changed_is_refused() -> None:
    signer = SessionSigner("secret")
    _, cookie = signer.open("project", "digest", now=NOW)
    payload, signature = cookie.split(".")
    _, foreign = SessionSigner("other secret").open("project", "digest", now=NOW)
    for forged in (foreign, f"{payload}A.{signature}", f"{payload}.{signature[::-1]}", "", "x" * 5000,
                   f"{payload}.{signature}.x", "!!!.???", "e30.sig"):
        assert signer.read(forged, now=NOW) is None, forged


def test_csrf_tokens_are_bound_to_their_session() -> None:
    signer = SessionSigner("secret")
    first, _ = signer.open("project", "digest", now=NOW)
    second, _ = signer.open("project", "digest", now=NOW)
    token = signer.csrf_token(first)
    assert signer.csrf_ok(first, token)
    assert not signer.csrf_ok(second, token)
    assert not signer.csrf_ok(first, None) and not signer.csrf_ok(first, "") and not signer.csrf_ok(first, token[:-1])


def test_values_are_escaped_folded_and_clipped() -> None:
    html = value_html({"a": "<script>alert(1)</script>", "<b>": [1, True, None]})
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html
    assert html.count("<details") == 2
    long = value_html("q" * (CLIP_CHARS + 10))
    assert "show all (610 characters)" in long and long.count("q") == CLIP_CHARS + CLIP_CHARS + 10
    many = value_html(list(range(MAX_ITEMS + 5)))
    assert "… 5 more" in many
    assert "&lt;img src=x onerror=alert(1)&gt;" in value_html('<img src=x onerror=alert(1)>')
    assert value_html('{"k": "v"}').startswith('<div class="json">')  # JSON text is shown as JSON


def test_a_deep_value_is_shown_without_recursing_without_end() -> None:
    deep: object = "bottom"
    for _ in range(200):
        deep = [deep]
    assert "bottom" in value_html(deep)


def _span(span_id: str, parent: str | None, start_s: float, end_s: float) -> SpanRecord:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return SpanRecord(id=span_id, trace_id="t", project_id="p", name=span_id, parent_id=parent,
                      start_time=base + timedelta(seconds=start_s), end_time=base + timedelta(seconds=end_s))


def test_the_waterfall_lists_children_under_parents_on_the_trace_s_time() -> None:
    rows = waterfall([_span("root", None, 0, 10), _span("b", "root", 5, 10), _span("a", "root", 0, 5),
                      _span("a1", "a", 1, 2), _span("orphan", "gone", 9, 10)])
    assert [(row.span.id, row.depth) for row in rows] == [("root", 0), ("b", 1), ("a", 1), ("a1", 2), ("orphan", 0)]
    by_id = {row.span.id: row for row in rows}
    assert (by_id["root"].offset, by_id["root"].width) == (0.0, 1000.0)
    assert (by_id["b"].offset, by_id["b"].width) == (500.0, 500.0)
    assert (by_id["a1"].offset, by_id["a1"].width) == (100.0, 100.0)


def test_a_cycle_of_parents_does_not_loop() -> None:
    rows = waterfall([_span("x", "y", 0, 1), _span("y", "x", 0, 1)])
    assert rows == []  # neither is a root: nothing to hang them from, and no endless walk


def _revision(number: int, instructions: str, model: str) -> RevisionRecord:
    return RevisionRecord(id=str(number), function_id="f", number=number, schema_hash="",
                          definition=FunctionDefinition(instructions=instructions, model=model),
                          created_at=datetime(2026, 1, 1, tzinfo=UTC), is_current=False)


def test_a_revision_diff_shows_what_changed() -> None:
    lines = revision_diff(_revision(1, "Be brief.", "openai/gpt-4o"), _revision(2, "Be thorough.", "openai/gpt-4o"))
    assert ("-", "-Be brief.") in lines and ("+", "+Be thorough.") in lines
    assert (" ", "--- revision 1") in lines  # the header is no change
    changed = [line for kind, line in lines if kind in "-+"]
    assert not [line for line in changed if "gpt-4o" in line]  # the model did not change
