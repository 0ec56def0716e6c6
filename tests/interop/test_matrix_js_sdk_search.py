"""Interop: searching a word from Element finds the message. tools/clients/js_search.mjs
runs a stock matrix-js-sdk (37.0.0) the way Element's search box does (`recent`, the
room's filter with a page of 10, one event of context each side with profiles, more
pages while `next_batch` is given) against a real relay, and reports what it would
render.

Like tests/interop/test_matrix_js_sdk.py, it fails (never skips) without node and the
SDK (`make clients`).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser
from tests.interop.conftest import ChatPair, relay_log_tail
from tests.interop.test_matrix_js_sdk import CLIENTS_DIR, _node

pytestmark = pytest.mark.integration

SCRIPT = CLIENTS_DIR / "js_search.mjs"
TIMEOUT_S = 180


def test_a_word_searched_from_element_finds_the_messages(
    relay: RelayProcess, chat_pair: ChatPair
) -> None:
    node = _node()
    p = chat_pair
    alice = MatrixUser.login(p.base_url, p.user_a, p.password_a)
    bob = MatrixUser.login(p.base_url, p.user_b, p.password_b)
    bob.call("PUT", f"/profile/{bob.user_id}/displayname", json={"displayname": "Bob B"})
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    for i in range(12):
        alice.send(room, f"chatter {i}")
        bob.send(room, f"generator fuel level {i}")
    other = alice.create_room(preset="public_chat")
    alice.send(other, "generator elsewhere")  # another room: not in Element's room search
    cmd = [node, str(SCRIPT), p.base_url, p.user_a, p.password_a, room, "Generator"]
    proc = subprocess.run(cmd, cwd=CLIENTS_DIR, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{relay_log_tail(relay)}"
    shown = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shown["count"] == 12
    assert shown["pages"] == 2
    assert [r["body"] for r in shown["results"]] == [
        f"generator fuel level {i}" for i in reversed(range(12))
    ]
    assert {r["sender_name"] for r in shown["results"]} == {"Bob B"}
    newest = shown["results"][0]
    assert newest["before"] == ["chatter 11"] and newest["after"] == []
    assert shown["results"][1]["after"] == ["chatter 11"]
    assert shown["highlights"] == ["Generator"]
