"""Fixtures for tests of what the relay serves to a browser: the browser harness
(tests/web/browser.py) and one real relay (tests/integration/conftest.py's harness)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.web.chat_client import chat_client_built
from tests.integration.conftest import RelayProcess, make_relay
from tests.web.browser import (  # noqa: F401  (fixtures and the hook they need)
    browser,
    playwright,
    pytest_runtest_makereport,
    run_dir,
)


@pytest.fixture(scope="session")
def web_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """One running relay for the tests of this directory (each test has users of its own),
    on a fresh 127.0.x.y address (a secure context for Chromium, as a loopback origin),
    serving the built chat client; registration.mode = "token", as a kit that hands out
    invitation tokens runs."""
    if not chat_client_built():
        pytest.fail("the web chat client is not built: run `make webclient`")
    relay = make_relay(tmp_path_factory.mktemp("web"))
    relay.init()
    config = relay.data_dir / "relay.toml"
    config.write_text(config.read_text().replace('mode = "closed"', 'mode = "token"', 1))
    relay.start()
    try:
        yield relay
    finally:
        relay.kill()
