"""The WebCrypto stand-in the chat client loads on a plain-HTTP LAN origin
(web/src/insecure_context.js), judged by the browser's own WebCrypto: in a secure page, the
same operations through both must give the same bytes, for every algorithm Hydrogen uses
(digests, HMAC sign/verify, PBKDF2, HKDF, AES-CTR with raw and JWK keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from relay.web.chat_client import BUILD_DIR
from tests.integration.conftest import RelayProcess

COMPARE = (Path(__file__).parent / "webcrypto_compare.js").read_text()


def test_the_stand_in_gives_the_same_bytes_as_the_browsers_webcrypto(
    web_relay: RelayProcess, browser: Browser
) -> None:
    (chunk,) = [p.name for p in (BUILD_DIR / "assets").glob("insecure_context-*.js")]
    context = browser.new_context()
    page = context.new_page()
    page.goto(web_relay.client_url + "/")  # a secure context (loopback), under the page's CSP
    results: dict[str, Any] = page.evaluate(COMPARE, f"/assets/{chunk}")
    context.close()
    assert len(results) == 15
    for name, (ours, native) in results.items():
        assert ours == native, name
    assert results["hmac refuses SHA-256"] == [False, False]
