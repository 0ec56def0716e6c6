"""The one browser harness: Debian's headless Chromium driven by Playwright (pinned in
pyproject.toml), for every test of a page the relay serves.

Playwright never downloads a browser here: it launches the system's `chromium` (Debian
package, tools/host/packages.txt, group `test`) through `executable_path`.

- `browser` (module-scoped fixture): one Chromium per test module; make a context per person
  (`browser.new_context()`): contexts share nothing (storage, service workers, cookies).
- `run_dir` (fixture): the directory of this test's screenshots, under tests/web/runs/RUN/
  (gitignored; RUN is the pytest run's start time), kept after the run for a person to look at.
- `Screenshots(page, run_dir, who)`: `.take("step")` saves NN-who-step.png, numbered in order.
- `PageWatch.attach(page, origin)`: collects the page's errors (uncaught exceptions, console
  errors, Content-Security-Policy violations) and every request to another origin, for a
  test to assert on (`.assert_clean()`).

Use from a conftest: `from tests.web.browser import browser, run_dir  # noqa: F401`.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

RUNS_DIR = Path(__file__).resolve().parent / "runs"
RUN_NAME = time.strftime("%Y%m%d-%H%M%S")
#: Chromium as root in a container: its sandbox needs namespaces it may not get.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]


def chromium_path() -> str:
    """The system's Chromium (Debian installs /usr/bin/chromium)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `tools/host/deps.sh test` (as root)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def run_dir(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    path = RUNS_DIR / RUN_NAME / f"{request.node.module.__name__.rsplit('.', 1)[-1]}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Screenshots:
    page: Page
    run_dir: Path
    who: str
    counter: list[int] = field(default_factory=lambda: [0])

    def take(self, step: str) -> Path:
        """Save the page as it is now: NN-who-step.png (NN counts across everyone sharing
        `counter`, so one test's files sort in the order they were taken)."""
        self.counter[0] += 1
        path = self.run_dir / f"{self.counter[0]:02d}-{self.who}-{step}.png"
        self.page.screenshot(path=str(path))
        return path


@dataclass
class PageWatch:
    origin: str
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    #: Console errors that are the server's expected answers, not faults (regexes).
    expected: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, page: Page, origin: str, expected: list[str] | None = None) -> PageWatch:
        watch = cls(origin=origin.rstrip("/"), expected=list(expected or []))
        page.on("pageerror", lambda exc: watch.errors.append(f"uncaught: {exc}"))
        page.on("console", watch._console)
        page.on("request", watch._request)
        return watch

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or (
            message.type == "error" and not any(re.search(p, text) for p in self.expected)
        ):
            self.errors.append(f"console {message.type}: {text}")

    def _request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign_requests.append(request.url)

    def assert_clean(self) -> None:
        assert self.foreign_requests == [], "the page asked another origin"
        assert self.errors == [], "the page had errors"
