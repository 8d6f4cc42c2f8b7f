"""The UI's main paths in chromium against a real server and the fake upstream: a trace made by a
real /v2/call, read and given feedback; the playground's stream; the usage page's sums; keys; sign-out."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from taskgate.engine.spans import REVISION_KEY
from taskgate.store import SqlStore, open_store
from taskgate.store.tables import spans
from tests.ui.conftest import REPO, PageWatch, UiServer, api, screenshot, sign_in

pytestmark = pytest.mark.timeout(180)


def _call(server: UiServer, name: str, payload: Any, key: str | None = None) -> dict[str, Any]:
    status, body = api(server, "POST", "/v2/call", {"name": name, "instructions": "Greet the person.",
                                                     "input": payload}, key)
    assert status == 200, body
    return body


def test_a_real_call_is_listed_opened_read_and_given_feedback(page: Any, ui_server: UiServer) -> None:
    answer = _call(ui_server, "ui-greeter", {"person": "Ada Lovelace", "notes": "x" * 2000})
    sign_in(page, ui_server.key)
    screenshot(page, "traces")
    page.get_by_role("link", name="ui-greeter").first.click()
    page.wait_for_url(re.compile(r".*/ui/traces/[^?]+$"))
    assert page.locator(".wf-row").count() == 1
    assert "Ada Lovelace" in page.inner_text("#span-input")
    assert "This is a fake reply." in page.inner_text("#span-output")
    assert "Greet the person." in page.inner_text("#span-instructions")
    # long text is clipped, and the whole is behind "show all"
    assert page.locator("#span-input .show-all summary").inner_text().startswith("show all (2,000")
    path = screenshot(page, "trace")
    if __import__("os").environ.get("TASKGATE_UI_DOCS_SCREENSHOT"):
        shutil.copyfile(path, REPO / "docs" / "ui-trace.png")

    page.select_option("#fb-score", "0")
    page.fill("#fb-comment", "too formal")
    page.get_by_role("button", name="Give feedback").click()
    page.wait_for_url(re.compile(r".*saved=feedback.*"))
    assert "Score 0.0: too formal" in page.inner_text("#span-feedback")
    status, span = api(ui_server, "GET", f"/v2/spans/{answer['span_id']}")
    assert status == 200 and span["feedback"] == {"score": 0.0, "comment": "too formal"}

    page.fill("#ex-comment", "a good one")
    page.get_by_role("button", name="Save as example").click()
    page.wait_for_url(re.compile(r".*saved=example.*"))
    status, function = api(ui_server, "GET", "/v2/functions/by-name/ui-greeter")
    status, entries = api(ui_server, "GET", f"/v2/datasets/{function['dataset_id']}/entries")
    assert status == 200 and [entry["comment"] for entry in entries["data"]] == ["a good one"]


def test_the_playground_streams_the_function_s_answer(page: Any, ui_server: UiServer) -> None:
    _call(ui_server, "ui-playground", {"person": "Grace"})
    sign_in(page, ui_server.key)
    page.get_by_role("link", name="Functions", exact=True).click()
    screenshot(page, "functions")
    page.get_by_role("link", name="ui-playground").click()
    page.fill("#pg-input", '{"person": "Alan"}')
    page.get_by_role("button", name="Call").click()
    expect(page.locator("#playground-status")).to_have_text("Done", timeout=20_000)
    assert page.inner_text("#playground-output") == "Hello from gpt-4o-mini! This is a fake reply."
    screenshot(page, "function")
    page.click("#playground-span")
    page.wait_for_url(re.compile(r".*/ui/traces/.*"))
    assert "Alan" in page.inner_text("#span-input")


def test_the_usage_page_shows_what_the_spans_cost(page: Any, ui_server: UiServer) -> None:
    span_ids = [_call(ui_server, f"ui-usage-{index % 2}", {"n": index}, ui_server.usage_key)["span_id"]
                for index in range(3)]
    costs = [api(ui_server, "GET", f"/v3/spans/{span_id}", key=ui_server.usage_key)[1]["cost"]
             for span_id in span_ids]
    assert all(cost for cost in costs)
    sign_in(page, ui_server.usage_key)
    page.get_by_role("link", name="Usage", exact=True).click()
    shown = float(page.inner_text("#usage-total-cost").removeprefix("$"))
    assert shown == pytest.approx(sum(costs), abs=1e-8)
    assert page.inner_text("#usage-total-calls") == "3"
    assert page.locator("svg.chart rect").count() >= 1
    screenshot(page, "usage")
    page.fill("#u-by", "function")
    page.select_option("#u-metric", "calls")
    page.get_by_role("button", name="Show").click()
    rows = page.locator("table tbody tr").all_inner_texts()
    assert any("ui-usage-0" in row for row in rows) and any("ui-usage-1" in row for row in rows)


def test_a_key_made_on_the_page_works_until_it_is_revoked(page: Any, ui_server: UiServer) -> None:
    sign_in(page, ui_server.key)
    page.get_by_role("link", name="Keys", exact=True).click()
    page.get_by_role("button", name="Create a key").click()
    key = page.inner_text("#new-key").strip()
    screenshot(page, "keys")
    assert key.startswith("tg_")
    assert api(ui_server, "GET", "/v2/functions", key=key)[0] == 200
    page.goto("/ui/keys")  # shown once: not on the page again
    assert page.locator("#new-key").count() == 0
    page.get_by_role("button", name=re.compile("Revoke key")).first.click()
    page.wait_for_url(re.compile(r".*revoked=1"))
    assert api(ui_server, "GET", "/v2/functions", key=key)[0] == 401


def test_sign_out_ends_the_session(page: Any, ui_server: UiServer, watch: PageWatch) -> None:
    sign_in(page, ui_server.key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "taskgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/sign-in")
    screenshot(page, "sign-in")
    page.goto("/ui/traces")
    assert "/ui/sign-in?next=" in page.url
    # the signed-out cookie, put back, opens nothing
    page.context.add_cookies([cookie])
    page.goto("/ui/usage")
    assert "/ui/sign-in?next=%2Fui%2Fusage" in page.url


@pytest.mark.parametrize("path", ["/ui/traces", "/ui/usage", "/ui/keys", "/ui/functions", "/ui/traces/x",
                                  "/ui/nowhere"])
def test_a_page_without_a_session_sends_to_sign_in(page: Any, path: str) -> None:
    page.goto(path)
    assert page.url.endswith("/ui/sign-in?next=" + path.replace("/", "%2F"))
    assert page.locator("#key").is_visible()


def test_another_project_s_data_is_never_shown_even_by_url(page: Any, ui_server: UiServer,
                                                           watch: PageWatch) -> None:
    theirs = _call(ui_server, "ui-their-secret", {"secret": "project B only"}, ui_server.other_key)
    _, function = api(ui_server, "GET", "/v2/functions/by-name/ui-their-secret", key=ui_server.other_key)
    _, span = api(ui_server, "GET", f"/v3/spans/{theirs['span_id']}", key=ui_server.other_key)
    sign_in(page, ui_server.key)
    assert "ui-their-secret" not in page.content()
    page.goto("/ui/traces?function=ui-their-secret")
    assert "No traces match." in page.inner_text("main")
    watch.allow(404)
    for path in (f"/ui/traces/{span['trace_id']}", f"/ui/spans/{theirs['span_id']}",
                 f"/ui/functions/{function['id']}"):
        response = page.goto(path)
        assert response.status == 404, path
        assert page.locator("h1").inner_text() == "Not found"
        assert "project B only" not in page.content()
    page.goto("/ui/functions")
    assert "ui-their-secret" not in page.content()
    # a feedback form aimed at their span, with this session's own token, changes nothing of theirs
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    posted = page.request.post(f"/ui/spans/{theirs['span_id']}/feedback", form={"csrf": csrf, "score": "1"})
    assert posted.status == 404
    assert api(ui_server, "GET", f"/v2/spans/{theirs['span_id']}", key=ui_server.other_key)[1]["feedback"] is None


def test_a_knowledge_base_shows_documents_files_and_answers_a_query(page: Any, ui_server: UiServer,
                                                                     watch: PageWatch) -> None:
    import urllib.request

    from tests.file_samples import multipart
    from tests.span_lookup import wait_until

    status, base = api(ui_server, "POST", "/v2/knowledge", {"name": "ui-kb",
                                                            "embedding_model": "openai/text-embedding-bow-1"})
    assert status == 200, base
    for key, text in (("stockholm", "Stockholm is the capital of Sweden, on fourteen islands."),
                      ("bread", "Sourdough bread needs flour, water, salt and a starter.")):
        assert api(ui_server, "POST", f"/v2/knowledge/{base['id']}/add",
                   {"key": key, "content": text, "metadata": {"topic": key}})[0] == 201
    body, form_type = multipart({}, {"file": ("cats.txt", b"Cats sleep most of the day and hunt at night.",
                                              "text/plain")})
    upload = urllib.request.Request(f"{ui_server.url}/v2/knowledge/{base['id']}/upload", data=body, method="POST",
                                    headers={"authorization": f"Bearer {ui_server.key}", "content-type": form_type})
    with urllib.request.urlopen(upload, timeout=30) as answer:
        assert answer.status == 201
    assert wait_until(lambda: api(ui_server, "GET", f"/v2/knowledge/{base['id']}/files")[1]["data"][0]["status"]
                      == "completed", timeout=30)
    sign_in(page, ui_server.key)
    page.get_by_role("link", name="Knowledge", exact=True).click()
    page.get_by_role("link", name="ui-kb").click()
    assert "cats.txt" in page.inner_text("main") and "completed" in page.inner_text("main")
    assert "stockholm" in page.inner_text("main") and "bread" in page.inner_text("main")
    page.fill("#kb-query", "capital of Sweden")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#kb-results li").first.inner_text().startswith("stockholm")
    screenshot(page, "knowledge")
    watch.allow(404)
    _, theirs = api(ui_server, "POST", "/v2/knowledge", {"name": "ui-their-kb",
                                                         "embedding_model": "openai/text-embedding-bow-1"},
                    ui_server.other_key)
    assert page.goto(f"/ui/knowledge/{theirs['id']}").status == 404
    page.goto("/ui/knowledge")
    assert "ui-their-kb" not in page.content()


def test_phone_width_dark_mode_and_keyboard(browser: Any, ui_server: UiServer) -> None:
    """On a 390 px wide screen in dark mode no page scrolls sideways, and the keyboard reaches the
    skip link first and signs in without a pointer."""
    watch = PageWatch()
    context = browser.new_context(base_url=ui_server.url, viewport={"width": 390, "height": 844},
                                  color_scheme="dark")
    phone = context.new_page()
    phone.on("console", watch.console)
    phone.on("response", watch.response)
    try:
        _call(ui_server, "ui-phone", {"person": "Katherine Johnson"})
        phone.goto("/ui/sign-in")
        # autofocus is applied at the next rendering update, which may come after the load event:
        # wait for it (no click), or the first keys go to the body
        phone.wait_for_function("() => document.activeElement && document.activeElement.id === 'key'")
        phone.keyboard.type(ui_server.key)
        phone.keyboard.press("Enter")
        phone.wait_for_url("**/ui/traces")
        phone.keyboard.press("Tab")
        assert phone.evaluate("() => document.activeElement.textContent") == "Skip to content"
        background = phone.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 19, 22)"  # the dark palette
        for path in ("/ui/traces", "/ui/usage", "/ui/functions", "/ui/keys", "/ui/knowledge"):
            phone.goto(path)
            assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390, path
        phone.goto("/ui/traces")
        phone.get_by_role("link", name="ui-phone").first.click()
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
        screenshot(phone, "trace-phone-dark")
    finally:
        context.close()
    assert not watch.problems, watch.problems


def test_two_revisions_of_a_function_are_compared(page: Any, ui_server: UiServer) -> None:
    status, made = api(ui_server, "POST", "/v2/functions", {"name": "ui-revised", "instructions": "Be brief."})
    assert status in (200, 201), made
    status, _ = api(ui_server, "PATCH", f"/v2/functions/{made['id']}", {"instructions": "Be thorough."})
    assert status == 200
    sign_in(page, ui_server.key)
    page.goto(f"/ui/functions/{made['id']}")
    page.select_option("#rev-from", "1")
    page.select_option("#rev-to", "2")
    page.get_by_role("button", name="Compare").click()
    assert page.locator("#revision-diff del").all_inner_texts() == ["-Be brief."]
    assert page.locator("#revision-diff ins").all_inner_texts() == ["+Be thorough."]


def test_a_span_shows_its_guard_findings(page: Any, ui_server: UiServer) -> None:
    status, answer = api(ui_server, "POST", "/v3/call", {
        "name": "ui-guarded", "input": "Write to ada@example.com about the meeting.", "model": "openai/gpt-4o-mini",
        "guard": {"input": [{"type": "pii", "action": "flag"}]}})
    assert status == 200, answer
    sign_in(page, ui_server.key)
    page.goto(f"/ui/traces/{answer['meta']['trace_uuid']}")
    findings = page.inner_text("#span-guards")
    assert "email" in findings and "ada@example.com" not in findings


def _instructions_of(page: Any, span_id: str) -> tuple[str, str]:
    """(heading, instructions) of a span's detail, opened by the span's id."""
    page.goto(f"/ui/spans/{span_id}")
    page.wait_for_url(re.compile(rf".*span={span_id}.*"))
    heading = page.locator("h3", has_text="Instructions").inner_text()
    return heading, page.inner_text("#span-instructions")


def test_each_span_shows_the_instructions_its_call_used(page: Any, ui_server: UiServer) -> None:
    """Instructions changed between calls, and a call of the older revision after that: each span's page
    shows the instructions of the revision its call ran with, never simply the function's current ones."""
    body = {"name": "ui-evolving", "input": {"q": "hello"}}
    status, french = api(ui_server, "POST", "/v2/call", {**body, "instructions": "Answer in French."})
    assert status == 200, french
    status, german = api(ui_server, "POST", "/v2/call", {**body, "instructions": "Answer in German."})
    assert status == 200, german
    status, function = api(ui_server, "GET", "/v2/functions/by-name/ui-evolving")
    status, revisions = api(ui_server, "GET", f"/v2/functions/{function['id']}/revisions")
    assert status == 200 and len(revisions["data"]) == 2
    first_revision = next(r["id"] for r in revisions["data"] if r["id"] != function["revision_id"])
    status, older = api(ui_server, "POST", f"/v2/functions/{function['id']}/call/{first_revision}",
                        {"input": {"q": "again"}})
    assert status == 200, older
    sign_in(page, ui_server.key)
    for answer, instructions, number in ((french, "Answer in French.", 1), (german, "Answer in German.", 2),
                                         (older, "Answer in French.", 1)):
        heading, shown = _instructions_of(page, answer["span_id"])
        assert instructions in shown and f"revision {number}, as this call used them" in heading
    # a client can neither see the span's record of its revision nor point it at another one
    status, patched = api(ui_server, "PATCH", f"/v2/spans/{french['span_id']}",
                          {"meta": {"_revision_id": function["revision_id"], "mine": 1}})
    assert status == 200, patched
    status, span = api(ui_server, "GET", f"/v3/spans/{french['span_id']}")
    assert status == 200 and span["meta"].get("mine") == 1 and "_revision_id" not in span["meta"]
    assert "Answer in French." in _instructions_of(page, french["span_id"])[1]
    # the function deleted: its revisions are gone, and the page says so rather than showing other instructions
    assert api(ui_server, "DELETE", f"/v2/functions/{function['id']}")[0] in (200, 204)
    page.goto(f"/ui/spans/{german['span_id']}")
    page.wait_for_url(re.compile(rf".*span={german['span_id']}.*"))
    assert "no longer stored" in page.inner_text("#span-instructions-gone")
    assert page.locator("#span-instructions").count() == 0


def _write_legacy_copy(data_dir: Path, span_id: str, legacy_id: str) -> None:
    """A copy of the span as spans were stored before calls recorded their revision (no `meta`), written
    straight into the server's SQLite file, in a thread of its own (Playwright's loop runs in this one)."""

    async def write() -> None:
        store = await open_store(f"sqlite:///{data_dir / 'taskgate.db'}")
        assert isinstance(store, SqlStore)
        try:
            with store.database.engine.connect() as conn:
                project_id = conn.execute(sa.select(spans.c.project_id).where(spans.c.id == span_id)).scalar_one()
            span = await store.get_span(project_id, span_id)
            assert span is not None and span.meta.get(REVISION_KEY)
            await store.write_spans([dataclasses.replace(span, id=legacy_id, meta={})])
        finally:
            await store.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result()


def test_a_span_that_recorded_no_revision_shows_the_current_instructions_labelled_so(
        page: Any, ui_server: UiServer) -> None:
    answer = _call(ui_server, "ui-legacy", {"q": "old"})
    assert api(ui_server, "GET", "/v2/traces")[0] == 200  # a listing writes the waiting spans first
    legacy_id = str(uuid.uuid4())
    _write_legacy_copy(ui_server.process.data_dir, answer["span_id"], legacy_id)
    status, _ = api(ui_server, "POST", "/v2/call", {"name": "ui-legacy", "instructions": "Newer words.",
                                                    "input": {"q": "new"}})
    assert status == 200
    sign_in(page, ui_server.key)
    heading, shown = _instructions_of(page, legacy_id)
    assert "Newer words." in shown and "current revision" in heading and "did not record" in heading
    heading, shown = _instructions_of(page, answer["span_id"])
    assert "Greet the person." in shown and "revision 1, as this call used them" in heading
