"""The UI against hostile requests: forged and expired sessions, POSTs without their CSRF token or
from another site, huge and malformed filters, unknown ids, and HTML in span content, which must be
shown as text and never run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from taskgate.store.accounts import key_hash
from taskgate.ui.sessions import COOKIE_NAME, SessionSigner
from tests.ui.conftest import PageWatch, UiServer, api, sign_in

pytestmark = pytest.mark.timeout(180)


def _cookie(ui_server: UiServer, value: str) -> dict[str, Any]:
    return {"name": COOKIE_NAME, "value": value, "url": f"{ui_server.url}/ui/", "httpOnly": True,
            "sameSite": "Strict"}


def _signer(ui_server: UiServer) -> SessionSigner:
    return SessionSigner((ui_server.process.data_dir / "secret.key").read_text().strip())


def _project_id(page: Any, ui_server: UiServer) -> str:
    """The main key's project id, read from a real session (the cookie's payload is readable, not forgeable)."""
    sign_in(page, ui_server.key)
    value = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE_NAME)
    session = _signer(ui_server).read(value)
    assert session is not None
    page.context.clear_cookies()
    return session.project_id


def test_forged_and_tampered_cookies_are_sent_to_sign_in(page: Any, ui_server: UiServer) -> None:
    project_id = _project_id(page, ui_server)
    sign_in(page, ui_server.key)
    genuine = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE_NAME)
    payload, signature = genuine.split(".")
    other = SessionSigner("not the server's secret").open(project_id, key_hash(ui_server.key))[1]
    # signed with the server's own secret, but never issued: the store holds no session of it
    never_issued = _signer(ui_server).open(project_id, key_hash(ui_server.key))[1]
    for value in ("garbage", "a.b", f"{payload}.{signature[:-2]}AA", f"{payload}x.{signature}", other,
                  never_issued, "x." * 1500, f"{payload}.{signature}.extra"):
        page.context.clear_cookies()
        page.context.add_cookies([_cookie(ui_server, value)])
        page.goto("/ui/traces")
        assert "/ui/sign-in?next=" in page.url, value[:40]
    page.context.clear_cookies()
    page.context.add_cookies([_cookie(ui_server, genuine)])  # the control: the issued one opens the page
    page.goto("/ui/traces")
    assert page.url.endswith("/ui/traces")


def test_an_expired_session_or_one_of_an_unknown_key_is_refused(page: Any, ui_server: UiServer) -> None:
    project_id = _project_id(page, ui_server)
    signer = _signer(ui_server)
    expired = signer.open(project_id, key_hash(ui_server.key), now=time.time() - signer.lifetime_s - 1)[1]
    no_such_key = signer.open(project_id, key_hash("tg_never-issued"))[1]
    for value in (expired, no_such_key):
        page.context.clear_cookies()
        page.context.add_cookies([_cookie(ui_server, value)])
        page.goto("/ui/keys")
        assert "/ui/sign-in?next=%2Fui%2Fkeys" in page.url


def test_a_post_without_its_csrf_token_or_from_another_site_is_refused(page: Any, ui_server: UiServer,
                                                                       watch: PageWatch) -> None:
    watch.allow(401, 403)
    sign_in(page, ui_server.key)
    page.goto("/ui/keys")
    before = page.locator("tbody tr").count()
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    for form in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": token + "x"}):
        answer = page.request.post("/ui/keys", form=form)
        assert answer.status == 403 and "Forbidden" in answer.text()
    for origin in ("http://evil.example", "null", "http://[", f"{ui_server.url}.evil.example"):
        cross_site = page.request.post("/ui/keys", form={"csrf": token}, headers={"origin": origin})
        assert cross_site.status == 403, origin
    login_csrf = page.request.post("/ui/sign-in", form={"key": ui_server.key},
                                   headers={"origin": "http://evil.example"})
    assert login_csrf.status == 403
    page.goto("/ui/keys")
    assert page.locator("tbody tr").count() == before  # no key was made
    page.context.clear_cookies()
    assert page.request.post("/ui/keys", form={"csrf": token}, max_redirects=0).status == 401


@pytest.mark.parametrize("query", [
    "function=" + "x" * 10_000, "model=" + "m" * 301, "tag=novalue", "tag=" + "k" * 400 + ":v",
    'tag=a"b:c', "status=bogus", "since=yesterday", "until=2026-13-45T99:99", "before=%00",
])
def test_a_bad_or_huge_trace_filter_is_a_400_page(page: Any, ui_server: UiServer, watch: PageWatch,
                                                  query: str) -> None:
    watch.allow(400)
    sign_in(page, ui_server.key)
    response = page.goto(f"/ui/traces?{query}")
    assert response.status == 400
    assert page.locator("h1").inner_text() == "Bad request"


@pytest.mark.parametrize("query", ["range=forever", "metric=vibes", "by=tag:" + "k" * 200, "by=colour"])
def test_a_bad_usage_choice_is_a_400_page(page: Any, ui_server: UiServer, watch: PageWatch, query: str) -> None:
    watch.allow(400)
    sign_in(page, ui_server.key)
    assert page.goto(f"/ui/usage?{query}").status == 400


@pytest.mark.parametrize("path", ["/ui/traces/no-such-trace", "/ui/spans/no-such-span", "/ui/functions/nope",
                                  "/ui/traces/" + "t" * 5000, "/ui/not-a-page", "/ui/traces/%3Cscript%3E"])
def test_unknown_ids_are_a_404_page(page: Any, ui_server: UiServer, watch: PageWatch, path: str) -> None:
    watch.allow(404)
    sign_in(page, ui_server.key)
    response = page.goto(path)
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Not found"


def test_unknown_key_or_revision_is_a_404(page: Any, ui_server: UiServer, watch: PageWatch) -> None:
    watch.allow(404)
    api(ui_server, "POST", "/v2/call", {"name": "ui-revisions", "input": "x"})
    _, function = api(ui_server, "GET", "/v2/functions/by-name/ui-revisions")
    sign_in(page, ui_server.key)
    assert page.goto(f"/ui/functions/{function['id']}?from=1&to=99").status == 404
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    assert page.request.post("/ui/keys/no-such-key/revoke", form={"csrf": token}).status == 404


def test_html_in_span_content_is_shown_as_text_and_never_run(page: Any, ui_server: UiServer) -> None:
    script = "<script>window.__xss = 1</script>"
    image = "<img src=x onerror=window.__xss=2>"
    status, span = api(ui_server, "POST", "/v2/spans", {
        "name": f"ui-xss {image}",
        "input": f"{script} and {image}",
        "output": {"html": image, "nested": [script]},
        "meta": {"note": script},
    })
    assert status == 200, span
    sign_in(page, ui_server.key)
    page.goto("/ui/traces?status=ok")
    assert page.get_by_text(f"ui-xss {image}").count() >= 1
    page.goto(f"/ui/spans/{span['id']}")
    page.wait_for_url("**/ui/traces/**")
    assert script in page.inner_text("#span-input") and image in page.inner_text("#span-input")
    assert image in page.inner_text("#span-output")
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.evaluate("() => window.__xss") is None


def test_the_sign_in_page_refuses_bad_keys_and_foreign_redirects(page: Any, ui_server: UiServer,
                                                                 watch: PageWatch) -> None:
    watch.allow(401, 413)
    page.goto("/ui/sign-in")
    page.fill("#key", "tg_wrong")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == "That API key is not valid."
    assert page.request.post("/ui/sign-in", form={"key": "k" * 300_000}).status == 413
    page.goto("/ui/sign-in?next=//evil.example/x")
    page.fill("#key", ui_server.key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/traces")


def test_a_session_of_a_key_without_admin_rights_cannot_see_or_make_keys(page: Any, ui_server: UiServer,
                                                                          watch: PageWatch) -> None:
    """As with /v2/admin/keys: a limited key must not mint itself an unlimited one through the UI."""
    watch.allow(403)
    sign_in(page, ui_server.other_key)  # made by `taskgate keys create`: calls only
    response = page.goto("/ui/keys")
    assert response.status == 403
    assert "admin key" in page.content()
    page.goto("/ui/traces")
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    assert page.request.post("/ui/keys", form={"csrf": token}).status == 403
    assert page.request.post("/ui/keys/any/revoke", form={"csrf": token}).status == 403
