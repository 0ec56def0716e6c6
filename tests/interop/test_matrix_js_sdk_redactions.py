"""Interop: a stock matrix-js-sdk (37.0.0) client on relay B, in a room shared with relay A,
shows redacted only what a redaction applies to.

matrix-js-sdk applies any m.room.redaction it gets from /sync (Element does too), so a
redaction that B accepts but does not apply (a power-0 user of A redacting B's user's
message) must never reach it: tools/clients/js_redactions.mjs runs the SDK's own sync
loop as Bob and reports what it shows. The twin: A's user redacting her own message.

Like tests/interop/test_matrix_js_sdk.py, it fails (never skips) without node and the
SDK (`make clients`).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.federation.conftest import relay_pair as relay_pair  # the two relays
from tests.federation.test_inbound_redactions import Rooms, pdu_from_a, send_from_a
from tests.federation.test_inbound_redactions import rooms as rooms  # their shared rooms
from tests.interop.test_matrix_js_sdk import CLIENTS_DIR, _node

pytestmark = pytest.mark.integration

SCRIPT = CLIENTS_DIR / "js_redactions.mjs"
TIMEOUT_S = 180


async def test_matrix_js_sdk_shows_redacted_only_what_a_redaction_applies_to(
    rooms: Rooms,
) -> None:
    node = _node()
    bob_msg = rooms.bob.send(rooms.public, "js-sdk: bob's words")
    forged = await pdu_from_a(rooms, rooms.public, "m.room.redaction", {"redacts": bob_msg})
    assert await send_from_a(rooms, forged) == {}
    alice_msg = await pdu_from_a(rooms, rooms.public, "m.room.message", {"body": "js-sdk: oops"})
    assert await send_from_a(rooms, alice_msg) == {}
    own = await pdu_from_a(rooms, rooms.public, "m.room.redaction", {"redacts": alice_msg.event_id})
    assert await send_from_a(rooms, own) == {}
    cmd = [node, str(SCRIPT), rooms.b.client_url, "bob", "pw", rooms.public]
    proc = subprocess.run(
        [*cmd, bob_msg, alice_msg.event_id],
        cwd=CLIENTS_DIR,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    shown = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shown[bob_msg] == {"found": True, "redacted": False}
    assert shown[alice_msg.event_id] == {"found": True, "redacted": True}
