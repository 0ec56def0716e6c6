"""The chat client the relay serves at `/`, used in a real Chromium: what a person on a
phone with no Matrix app does, end to end against a real relay."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Browser

from tests.integration.conftest import RelayProcess
from tests.web import chat_client as chat
from tests.web.browser import PageWatch, Screenshots


def _api_login(relay: RelayProcess, user: str, password: str) -> str:
    response = httpx.post(
        f"{relay.client_url}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
    )
    response.raise_for_status()
    return response.json()["access_token"]


def test_a_person_logs_in_creates_an_encrypted_room_and_sends(
    web_relay: RelayProcess, browser: Browser, run_dir: Path
) -> None:
    web_relay.cli("user", "add", "amira", "--password", "pw-amira")
    context = browser.new_context()
    page = chat.open_chat(context, web_relay.client_url)
    watch = PageWatch.attach(page, web_relay.client_url, chat.EXPECTED_CONSOLE_ERRORS)
    shots = Screenshots(page, run_dir, "amira")
    shots.take("login-screen")

    chat.log_in(page, "amira", "pw-amira")
    shots.take("logged-in")
    chat.create_room(page, "Water point 3")
    chat.send(page, "Tanker arrives at 14:00")
    shots.take("message-sent")

    # The relay stored it encrypted: only ciphertext reached the server.
    token = _api_login(web_relay, "amira", "pw-amira")
    headers = {"Authorization": f"Bearer {token}"}
    rooms = httpx.get(f"{web_relay.client_url}/_matrix/client/v3/joined_rooms", headers=headers)
    (room_id,) = rooms.json()["joined_rooms"]
    messages = httpx.get(
        f"{web_relay.client_url}/_matrix/client/v3/rooms/{room_id}/messages",
        params={"dir": "b", "limit": "20"},
        headers=headers,
    ).json()["chunk"]
    types = [event["type"] for event in messages]
    assert "m.room.encrypted" in types and "m.room.message" not in types
    assert "Tanker" not in str(messages)
    context.close()
    watch.assert_clean()
