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
