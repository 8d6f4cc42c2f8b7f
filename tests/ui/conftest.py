"""The UI in a real browser: Playwright driving Debian's chromium against a real `taskgate serve`.

Chromium comes from apt (installed here when missing and the tests run as root; scripts/setup.sh
installs it too); Playwright's own browser download is never used. Every page a test opens is
watched: a console error, a failed request or an unexpected error status fails the test. Each test
may allow the statuses it provokes on purpose (`watch.allow(404)`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, taskgate_command

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TASKGATE_UI_ARTIFACTS", REPO / "build" / "ui-screenshots"))
OTHER_PROJECT = "other"
USAGE_PROJECT = "usage"


def _ensure_chromium() -> str | None:
    """None when chromium is there (installed now if need be), else why it cannot be."""
    if Path(CHROMIUM).exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get): apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True)
    return None if Path(CHROMIUM).exists() else "apt-get install chromium did not install /usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an event loop
    running while it is started, and the async tests of a later module could not run their own."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    missing = _ensure_chromium()
    if missing:
        pytest.skip(missing)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _create_key(server: ServerProcess, project: str) -> str:
    done = subprocess.run([*taskgate_command(), "keys", "create", "--project", project, "--data-dir",
                           str(server.data_dir)], env=server.env, capture_output=True, text=True, check=True,
                          cwd=REPO)
    return done.stdout.strip()


@dataclass
class UiServer:
    process: ServerProcess
    other_key: str  # a key of another project, which the main key's sessions must never see
    usage_key: str  # a project of its own for the usage test, so its sums are known

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def key(self) -> str:
        return self.process.api_key


@pytest.fixture(scope="session")
def ui_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    process = ServerProcess(fake_provider, tmp_path_factory.mktemp("taskgate-ui"))
    process.data_dir.mkdir(parents=True, exist_ok=True)
    other, usage = _create_key(process, OTHER_PROJECT), _create_key(process, USAGE_PROJECT)
    process.start()
    yield UiServer(process, other, usage)
    process.stop()


@dataclass
class PageWatch:
    """What went wrong on a page: console errors, failed requests, responses with an error status."""

    problems: list[str] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)

    def allow(self, *statuses: int) -> None:
        self.allowed.update(statuses)

    def response(self, response: Any) -> None:
        if response.status >= 400 and response.status not in self.allowed:
            self.problems.append(f"{response.status} from {response.request.method} {response.url}")

    def console(self, message: Any) -> None:
        # the browser reports each allowed error status of a page as a console error too
        if message.type == "error" and not any(f"status of {status}" in message.text for status in self.allowed):
            self.problems.append(f"console error: {message.text}")


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(browser: Any, ui_server: UiServer, watch: PageWatch) -> Iterator[Any]:
    context = browser.new_context(base_url=ui_server.url, viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.on("console", watch.console)
    opened.on("pageerror", lambda error: watch.problems.append(f"page error: {error}"))
    opened.on("requestfailed", lambda request: watch.problems.append(
        f"request failed: {request.method} {request.url}: {request.failure}"))
    opened.on("response", watch.response)
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()
    assert not watch.problems, "the page had problems:\n" + "\n".join(watch.problems)


def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot written as a test artifact (build/ui-screenshots, or $TASKGATE_UI_ARTIFACTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, key: str) -> None:
    page.goto("/ui/sign-in")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/traces")


def api(server: UiServer, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    """A plain HTTP call of the API, as a client would make it."""
    import urllib.error
    import urllib.request

    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method, headers={
        "authorization": f"Bearer {key or server.key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, orjson.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, orjson.loads(raw) if raw else None
