"""Two `taskgate serve` processes on one store (a SQLite file, and a Postgres database of their own):
a sign-out or a key revoked on one ends the session on the other at once, in a real browser.

Cookies are not kept apart by port, so one browser context carries a session from A to B as a
browser would carry it between two replicas behind one host name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.ui.conftest import PageWatch, api, sign_in

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(request: pytest.FixtureRequest, fake_provider: FakeProvider,
             tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """A and B: separate data directories, one store, one secret (TASKGATE_SECRET_KEY)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        postgres = request.getfixturevalue("postgres")
        if isinstance(postgres, str):
            pytest.skip(postgres)
        url = postgres.create()
    env = {"TASKGATE_DATABASE_URL": url, "TASKGATE_SECRET_KEY": Fernet.generate_key().decode()}
    a = ServerProcess(fake_provider, tmp_path / "a", env)
    b = ServerProcess(fake_provider, tmp_path / "b", env)
    a.start()
    try:
        b.start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


class Browsing:
    """Watched browser contexts, each failing the test on a console error or an unexpected status."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self._contexts: list[Any] = []
        self.watch = PageWatch()

    def page(self, base_url: str) -> Any:
        context = self._browser.new_context(base_url=base_url)
        self._contexts.append(context)
        opened = context.new_page()
        opened.on("console", self.watch.console)
        opened.on("pageerror", lambda error: self.watch.problems.append(f"page error: {error}"))
        opened.on("requestfailed", lambda request: self.watch.problems.append(
            f"request failed: {request.method} {request.url}: {request.failure}"))
        opened.on("response", self.watch.response)
        opened.on("dialog", lambda dialog: dialog.accept())
        return opened

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def browsing(browser: Any) -> Iterator[Browsing]:
    opened = Browsing(browser)
    yield opened
    opened.close()
    assert not opened.watch.problems, "the pages had problems:\n" + "\n".join(opened.watch.problems)


def _session_cookie(page: Any) -> dict[str, Any]:
    return next(c for c in page.context.cookies() if c["name"] == "taskgate_session")


def _opens(page: Any, url: str) -> bool:
    """Whether the page at `url` opens, rather than sending to sign-in."""
    page.goto(url)
    if "/ui/sign-in" in page.url:
        return False
    assert page.url == url, page.url
    return True


def test_a_sign_out_on_one_process_ends_the_session_on_the_other(
        replicas: tuple[ServerProcess, ServerProcess], browsing: Browsing) -> None:
    a, b = replicas
    browsing.watch.allow(401)
    page = browsing.page(a.url)
    sign_in(page, a.api_key)
    assert _opens(page, f"{b.url}/ui/traces")  # the control: A's session opens B's pages
    page.goto(f"{b.url}/ui/keys")
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    cookie = _session_cookie(page)
    page.goto(f"{a.url}/ui/traces")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{a.url}/ui/sign-in")
    page.context.add_cookies([cookie])  # the copied cookie, replayed
    assert not _opens(page, f"{b.url}/ui/traces")
    page.context.add_cookies([cookie])
    assert not _opens(page, f"{a.url}/ui/usage")
    page.context.add_cookies([cookie])
    replayed_post = page.request.post(f"{b.url}/ui/keys", form={"csrf": token})
    assert replayed_post.status == 401
    status, keys = api(_Server(b.url, b.api_key), "GET", "/v2/functions")
    assert status == 200, keys  # B itself is healthy: only the session is gone


def test_a_key_revoked_on_one_process_ends_its_sessions_on_the_other(
        replicas: tuple[ServerProcess, ServerProcess], browsing: Browsing) -> None:
    a, b = replicas
    browsing.watch.allow(401)
    admin = browsing.page(a.url)
    sign_in(admin, a.api_key)
    admin.goto("/ui/keys")
    admin.get_by_role("button", name="Create a key").click()
    key = admin.inner_text("#new-key").strip()
    assert key.startswith("tg_")

    user = browsing.page(b.url)
    assert api(_Server(b.url, key), "GET", "/v2/functions")[0] == 200  # B knows the key now, in its caches
    sign_in(user, key)
    assert _opens(user, f"{b.url}/ui/functions")

    admin.goto("/ui/keys")
    admin.get_by_role("button", name=re.compile("Revoke key")).first.click()
    admin.wait_for_url(re.compile(r".*revoked=1"))

    assert not _opens(user, f"{b.url}/ui/functions")
    assert "/ui/sign-in?next=%2Fui%2Ffunctions" in user.url
    # B's key cache still holds the key, but signing in with it again is refused
    user.goto("/ui/sign-in")
    user.fill("#key", key)
    user.click("button[type=submit]")
    user.wait_for_load_state()
    assert "/ui/sign-in" in user.url and "That API key is not valid." in user.inner_text("body")
    assert _opens(admin, f"{b.url}/ui/traces")  # the configured key's session, on B too, lives on


class _Server:
    """What `tests.ui.conftest.api` needs of a server: its URL and a key."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
