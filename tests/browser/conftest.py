"""Real Chromium (Debian's, driven by Playwright) against real loopline servers on 127.0.0.1.

Without Chromium these tests are skipped, and the summary says why; CI sets
LOOPLINE_REQUIRE_BROWSER=1 so that a missing browser fails instead.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from rich.console import Console

from loopline import _sdk
from loopline.demo import run_demo
from loopline.server.options import ServerOptions
from loopline.wiring.backends import Backends, local_owner, open_backends
from loopline.wiring.settings import Settings
from tests.integration.api_helpers import Team, running_api, sqlite_team

CHROMIUM = os.environ.get("LOOPLINE_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("LOOPLINE_REQUIRE_BROWSER") == "1"


# Module-scoped, not session-scoped: Playwright's synchronous API runs an event loop in this
# thread while it is open, which would break asyncio.run() in the next module on this worker.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}; install it with `apt-get install -y chromium`"
        if REQUIRED:
            pytest.fail(f"LOOPLINE_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(f"browser tests: {message}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


class Watched:
    """A page whose console errors and uncaught exceptions are collected, and whose dialogs
    (alert, confirm) are recorded and dismissed."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location}")

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield Watched(context.new_page())
    context.close()


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[tuple[str, Backends]]:
    """`loopline ui` over a store made by the demo: (its URL, the store)."""
    try:
        home = run_demo(Settings(home=tmp_path_factory.mktemp("demo")), Console(file=io.StringIO()))
    finally:
        _sdk.reset()
    backends = open_backends(Settings(home=home))
    with running_api(backends, ServerOptions(embedded=local_owner())) as url:
        yield url, backends
    backends.close()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Team]:
    """`loopline server` with sign-in, over the test fixtures' store (every kind of thing)."""
    with sqlite_team(tmp_path_factory.mktemp("team")) as running:
        yield running
