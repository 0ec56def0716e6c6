"""Fixtures for tests of what the relay serves to a browser: the browser harness
(tests/web/browser.py) and one real relay for a module (tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.web.chat_client import chat_client_built
from tests.integration.conftest import RelayProcess, make_relay
from tests.web.browser import browser, run_dir  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def web_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """A running relay on a fresh 127.0.x.y address (a secure context for Chromium, as a
    loopback origin), serving the built chat client."""
    if not chat_client_built():
        pytest.fail("the web chat client is not built: run `make webclient`")
    relay = make_relay(tmp_path_factory.mktemp("web"))
    relay.init()
    relay.start()
    try:
        yield relay
    finally:
        relay.kill()
