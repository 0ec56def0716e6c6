"""Two relays federating over real TLS on loopback: invites, joins, messages both ways."""

from __future__ import annotations

import pytest

from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
def test_invite_join_and_messages_both_ways(
    two_relays: tuple[RelayProcess, RelayProcess], version: str
) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    room_id = alice.create_room(room_version=version, name="field ops")
    alice.invite(room_id, bob.user_id)
    bob.wait_for_invite(room_id)
    bob.join(room_id)
    sent_a = {alice.send(room_id, f"from alice {i}") for i in range(5)}
    sent_b = {bob.send(room_id, f"from bob {i}") for i in range(5)}
    assert len(sent_a | sent_b) == 10
    expected = {f"from alice {i}" for i in range(5)} | {f"from bob {i}" for i in range(5)}
    for user in (alice, bob):
        seen = user.wait_for_bodies(room_id, expected)
        assert sorted(seen) == sorted(expected), f"{user.user_id} saw duplicates: {seen}"
    # Each relay pushed its transactions on the other's transaction stream, compacted
    # (relay/federation/transaction_stream.py), and every event of every version arrived.
    assert f"{b.server_name} opened a transaction stream" in a.log()
    assert f"{a.server_name} opened a transaction stream" in b.log()


def test_typing_and_receipts_cross_servers(two_relays: tuple[RelayProcess, RelayProcess]) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    room_id = alice.create_room(name="ephemeral")
    alice.invite(room_id, bob.user_id)
    bob.wait_for_invite(room_id)
    bob.join(room_id)
    event_id = alice.send(room_id, "read me")
    bob.wait_for_bodies(room_id, {"read me"})

    def ephemeral(body: dict, kind: str) -> list[dict]:
        room = body.get("rooms", {}).get("join", {}).get(room_id, {})
        return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == kind]

    alice.call(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", json={"typing": True, "timeout": 30000}
    )
    bob.wait_for(
        lambda body: any(
            alice.user_id in e["content"]["user_ids"] for e in ephemeral(body, "m.typing")
        ),
        what="alice typing on bob's server",
    )
    bob.call("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", json={})
    alice.wait_for(
        lambda body: any(
            bob.user_id in e["content"].get(event_id, {}).get("m.read", {})
            for e in ephemeral(body, "m.receipt")
        ),
        what="bob's receipt on alice's server",
    )


def test_create_room_with_remote_invitee_invites_over_federation(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    room_id = alice.create_room(invite=[bob.user_id], is_direct=True, preset="trusted_private_chat")
    bob.wait_for_invite(room_id)
    bob.join(room_id)
    alice.send(room_id, "direct hello")
    bob.wait_for_bodies(room_id, {"direct hello"})


def test_join_remote_public_room_by_alias_and_by_id_with_server_name(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    room_id = alice.create_room(preset="public_chat", room_alias_name="ops", name="ops")
    # By alias: B asks A's directory over federation, then joins through A.
    assert bob.join(f"#ops:{a.server_name}") == room_id
    alice.send(room_id, "welcome")
    bob.wait_for_bodies(room_id, {"welcome"})
    # By id, naming the server to join through.
    second = alice.create_room(preset="public_chat", name="second")
    assert bob.join(second, via=[a.server_name]) == second
    bob.send(second, "in via server_name")
    alice.wait_for_bodies(second, {"in via server_name"})


def test_verify_tls_off_is_logged_as_a_warning(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    a, _b = two_relays
    assert "WARNING relay.node: federation.verify_tls is false" in a.log()


def _stored_content(relay: RelayProcess, event_id: str) -> dict | None:
    """The content of `event_id` as `relay` stored it (what reached it), or None."""
    import json
    import sqlite3

    conn = sqlite3.connect(f"file:{relay.data_dir / 'relay.db'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT raw FROM events WHERE event_id = ?", (event_id,)).fetchone()
    finally:
        conn.close()
    return json.loads(row[0])["content"] if row else None


def test_an_event_redacted_before_it_leaves_is_sent_redacted(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    """B is down while alice sends two messages and takes one back: when B returns, the
    outbox sends the redacted one pruned (its body never leaves A) and the other whole."""
    import time

    a, b = two_relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    room_id = alice.create_room(name="taken back")
    alice.invite(room_id, bob.user_id)
    bob.wait_for_invite(room_id)
    bob.join(room_id)
    b.stop()
    secret = alice.send(room_id, "the secret plan")
    kept = alice.send(room_id, "the public plan")
    redaction = alice.call(
        "PUT", f"/rooms/{room_id}/redact/{secret}/txn-redact", json={"reason": "oops"}
    )["event_id"]
    b.start()
    deadline = time.monotonic() + 60
    while _stored_content(b, redaction) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _stored_content(b, redaction) is not None, "the redaction never reached B"
    assert _stored_content(b, secret) == {}
    assert _stored_content(b, kept) == {"msgtype": "m.text", "body": "the public plan"}
