"""The one browser harness: Debian's headless Chromium driven by Playwright (pinned in
pyproject.toml), for every test of a page the relay serves.

Playwright never downloads a browser here: it launches the system's `chromium` (Debian
package, tools/host/packages.txt, group `test`) through `executable_path`.

- `browser` (module-scoped fixture): one Chromium per test module; make a context per person
  (`browser.new_context()`): contexts share nothing (storage, service workers, cookies).
  `playwright` (module-scoped) and `launch(playwright, *switches)`: a browser of one's own,
  e.g. with `--host-resolver-rules=MAP kit.lan 127.0.0.5` to reach a relay by a name that
  is not loopback's (the page is then not a secure context, as on a real LAN).
- `run_dir` (fixture): the directory of this test's screenshots, under tests/web/runs/RUN/
  (gitignored; one RUN per pytest run), kept after the run for a person to look at; only
  the newest RUNS_KEPT runs are kept.
- `Screenshots(page, run_dir, who)`: `.take("step")` saves NN-who-step.png, numbered in order.
- `PageWatch.attach(page, origin)`: collects the page's errors (uncaught exceptions, console
  errors, Content-Security-Policy violations) and every request to another origin, for a
  test to assert on (`.assert_clean()`).

Use from a conftest: import `browser`, `playwright`, `run_dir` and the hook
`pytest_runtest_makereport` (it keeps a test's outcome for `run_dir`, which then screenshots
every open page of a failed test), as tests/web/conftest.py does.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    sync_playwright,
)

RUNS_DIR = Path(__file__).resolve().parent / "runs"
#: One directory per pytest run: under pytest-xdist, named for the run id its workers share
#: (each worker imports this module at its own second).
_XDIST_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8]
RUN_NAME = time.strftime("%Y%m%d-") + (_XDIST_RUN or time.strftime("%H%M%S"))
#: Older runs beyond this many are deleted when a run starts writing.
RUNS_KEPT = 5
#: Chromium as root in a container: its sandbox needs namespaces it may not get.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]


def chromium_path() -> str:
    """The system's Chromium (Debian installs /usr/bin/chromium)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `tools/host/deps.sh test` (as root)")
    return found


def launch(playwright: Playwright, *extra_args: str) -> Browser:
    """A new headless Chromium (the system's), with extra command-line switches."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *extra_args]
    )


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver (one per module), for a test that needs a browser of its own
    (`launch(playwright, "--switch")`)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = launch(playwright)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def run_dir(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Path]:
    """This test's screenshot directory; when the test failed, every page still open is
    saved there too (failed-N.png)."""
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    path = RUNS_DIR / RUN_NAME / f"{request.node.module.__name__.rsplit('.', 1)[-1]}-{name}"
    path.mkdir(parents=True, exist_ok=True)
    _prune_old_runs()
    yield path
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        pages = [page for context in browser.contexts for page in context.pages]
        for number, page in enumerate(pages):
            try:
                page.screenshot(path=str(path / f"failed-{number}.png"))
            except Exception as exc:  # a crashed page must not hide the test's own failure
                (path / f"failed-{number}.txt").write_text(f"no screenshot: {exc}\n")


def _prune_old_runs() -> None:
    runs = sorted(RUNS_DIR.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [run for run in runs if run.name != RUN_NAME][RUNS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)  # another worker may be deleting it too


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keeps the call phase's report on the item, for `run_dir` to see a failure."""
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


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
    #: (status, method, URL) of every answer the page got (a service worker's included).
    responses: list[tuple[int, str, str]] = field(default_factory=list)
    #: Console errors that are the server's expected answers, not faults: regexes matched
    #: against "TEXT URL" (URL: where the console message came from, e.g. a failed load).
    expected: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, page: Page, origin: str, expected: list[str] | None = None) -> PageWatch:
        watch = cls(origin=origin.rstrip("/"), expected=list(expected or []))
        page.on("pageerror", lambda exc: watch.errors.append(f"uncaught: {exc}"))
        page.on("console", watch._console)
        page.on("request", watch._request)
        page.on(
            "response",
            lambda r: watch.responses.append((r.status, r.request.method, r.url)),
        )
        return watch

    def answered(self, path_prefix: str, status: int = 200) -> list[str]:
        """URLs under `path_prefix` (on the page's origin) answered with `status`."""
        prefix = self.origin + path_prefix
        return [url for got, _, url in self.responses if got == status and url.startswith(prefix)]

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        seen = f"{text} {message.location.get('url', '')}"
        if "Content Security Policy" in text or (
            message.type == "error" and not any(re.search(p, seen) for p in self.expected)
        ):
            self.errors.append(f"console {message.type}: {seen}")

    def _request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign_requests.append(request.url)

    def assert_clean(self) -> None:
        assert not self.foreign_requests, "asked another origin:\n" + "\n".join(
            self.foreign_requests
        )
        assert not self.errors, "the page had errors:\n" + "\n".join(self.errors)
