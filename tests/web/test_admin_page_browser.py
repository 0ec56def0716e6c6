"""The operator page in a real headless Chromium on a phone-sized screen, against a real
relay: the admin logs in, approves a pending LAN peer and creates a registration token,
which a new user then registers with in the web chat client. Screenshots of each step go
to tests/web/runs/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from store import db as store_db
from store import peers as store_peers
from tests.integration.conftest import RelayProcess, make_relay
from tests.integration.matrix_client import MatrixUser
from tests.web import chat_client as chat
from tests.web.browser import PageWatch, Screenshots

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
FINGERPRINT = "5f" * 32


@pytest.fixture
def token_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """A running relay with registration by token and an admin, `op`."""
    relay = make_relay(tmp_path)
    relay.init()
    config = relay.data_dir / "relay.toml"
    config.write_text(config.read_text().replace('mode = "closed"', 'mode = "token"'))
    relay.start()
    relay.cli("user", "add", "op", "--password", "pw-op", "--admin")
    try:
        yield relay
    finally:
        relay.kill()


def _announce_pending_peer(relay: RelayProcess) -> None:
    """What mDNS discovery records of a kit whose key nobody pinned yet."""
    conn = store_db.connect(relay.data_dir / "relay.db")
    try:
        with store_db.write(conn):
            store_peers.upsert_peer(
                conn,
                server_name="kit-b.lan",
                address="10.0.0.2",
                port=8448,
                key_id="ed25519:a_kitb",
                verify_key="K" * 43,
                fingerprint=FINGERPRINT,
                status="pending",
                version="0.1",
                reachable=True,
                reason="key not pinned: approve it with `relay peers approve`",
                now_ms=int(time.time() * 1000),
            )
    finally:
        conn.close()


def _fits_the_screen(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_operator_approves_a_peer_and_creates_a_token_on_a_phone(
    token_relay: RelayProcess, browser: Browser, run_dir: Path
) -> None:
    _announce_pending_peer(token_relay)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    watch = PageWatch.attach(page, token_relay.client_url)
    shots = Screenshots(page, run_dir, "operator")

    page.goto(f"{token_relay.client_url}/_relay/admin/")
    expect(page.locator("#login")).to_be_visible()
    shots.take("login")
    page.fill("#username", "op")
    page.fill("#password", "pw-op")
    page.click("#login")
    expect(page.locator("#status")).to_contain_text(token_relay.server_name)
    assert _fits_the_screen(page)
    shots.take("status")

    peer = page.locator('.peer[data-name="kit-b.lan"]')
    expect(peer).to_contain_text("pending")
    expect(peer).to_contain_text(FINGERPRINT)
    peer.scroll_into_view_if_needed()
    shots.take("pending-peer")
    peer.get_by_role("button", name="Approve").click()
    expect(page.locator("#message")).to_contain_text("Approved kit-b.lan")
    expect(page.locator('.peer[data-name="kit-b.lan"]')).to_contain_text("trusted")
    shots.take("peer-approved")

    page.fill("#token-text", "volunteers-0712")
    page.fill("#token-uses", "1")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#message")).to_contain_text("Created registration token volunteers-0712")
    assert _fits_the_screen(page)
    shots.take("token-created")
    context.close()
    watch.assert_clean()

    peers = json.loads(token_relay.cli("peers", "list", "--json").stdout)
    assert [(p["name"], p["status"], p["pinned_by"]) for p in peers] == [
        ("kit-b.lan", "trusted", "operator")
    ]
    # A volunteer registers with the token in the web chat client, on a phone.
    newcomer = browser.new_context(**PHONE)
    chat_page = chat.open_chat(newcomer, token_relay.client_url)
    chat_watch = PageWatch.attach(chat_page, token_relay.client_url, chat.EXPECTED_CONSOLE_ERRORS)
    chat.register(
        chat_page,
        "volunteer",
        "pw-v",
        "volunteers-0712",
        Screenshots(chat_page, run_dir, "volunteer", shots.counter),
    )
    Screenshots(chat_page, run_dir, "volunteer", shots.counter).take("registered-in-web-client")
    newcomer.close()
    chat_watch.assert_clean()
    MatrixUser.login(token_relay.client_url, "volunteer", "pw-v")
    # One use allowed: the token is spent.
    tokens = json.loads(token_relay.cli("token", "list", "--json").stdout)
    assert [(t["completed"], t["valid"]) for t in tokens] == [(1, False)]
