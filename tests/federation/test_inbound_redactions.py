"""Redactions received over /send by a running relay (B) from another (A): B accepts them
as events, and applies them only as *handling redactions* says (relay/events/auth.py
`redaction_allowed`), whatever B's users then read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from relay.events.pdu import Pdu
from tests.federation.conftest import open_side
from tests.federation.peers import (
    V1,
    build_event,
    membership_of,
    new_txn_id,
    signing_key_of,
    transaction,
)
from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser
from tests.support import wait_until

pytestmark = pytest.mark.integration


@dataclass
class Rooms:
    a: RelayProcess
    b: RelayProcess
    alice: MatrixUser  # on A, joined to the public room with power 0
    bob: MatrixUser  # on B, created both rooms
    public: str
    private: str  # no user of A in it


@pytest.fixture(scope="module")
def rooms(relay_pair: tuple[RelayProcess, RelayProcess]) -> Rooms:
    a, b = relay_pair
    a.cli("user", "add", "alice", "--password", "pw")
    b.cli("user", "add", "bob", "--password", "pw")
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    public = bob.create_room(name="redactions", preset="public_chat")
    bob.invite(public, alice.user_id)
    alice.wait_for_invite(public)
    alice.join(public)
    wait_until(lambda: membership_of(bob, public, alice.user_id) == "join", what="join on B")
    private = bob.create_room(name="no A here")
    return Rooms(a, b, alice, bob, public, private)


async def pdu_from_a(rooms: Rooms, room_id: str, type_: str, content: dict[str, Any]) -> Pdu:
    """An event of Alice's that A signs, built on B's view of the room (v12: `redacts`
    lives in the content)."""
    key = signing_key_of(rooms.a)
    async with open_side(rooms.b) as side:
        return await side.database.read(
            lambda conn: build_event(
                conn,
                room_id,
                server=rooms.a.server_name,
                key=key,
                sender=rooms.alice.user_id,
                type_=type_,
                content=content,
            )
        )


async def send_from_a(rooms: Rooms, pdu: Pdu) -> dict[str, Any]:
    async with open_side(rooms.a, verify_tls=False, federation_map={}) as side:
        body = await side.client.put_json(
            rooms.b.server_name,
            f"{V1}/send/{new_txn_id()}",
            transaction(rooms.a.server_name, [pdu.as_dict()]),
        )
    return body["pdus"][pdu.event_id]


def _content_on_b(rooms: Rooms, room_id: str, event_id: str) -> dict[str, Any]:
    return rooms.bob.call("GET", f"/rooms/{room_id}/event/{event_id}")["content"]


def _ids_on_b(rooms: Rooms, room_id: str) -> set[str]:
    """The event ids Bob's client gets from B: an initial /sync's timeline and /messages
    (a client such as Element applies any redaction it gets, so none may arrive that does
    not apply)."""
    body = rooms.bob.call("GET", "/sync", params={"filter": '{"room":{"timeline":{"limit":100}}}'})
    synced = body["rooms"]["join"][room_id]["timeline"]["events"]
    return {e["event_id"] for e in synced} | {e["event_id"] for e in rooms.bob.messages(room_id)}


async def test_power_0_user_of_another_server_cannot_redact_over_federation(
    rooms: Rooms,
) -> None:
    bob_msg = rooms.bob.send(rooms.public, "bob's words")
    forged = await pdu_from_a(rooms, rooms.public, "m.room.redaction", {"redacts": bob_msg})
    assert await send_from_a(rooms, forged) == {}  # accepted as an event ...
    assert _content_on_b(rooms, rooms.public, bob_msg)["body"] == "bob's words"  # ... inert
    bodies = rooms.bob.bodies(rooms.public)
    assert "bob's words" in bodies
    assert forged.event_id not in _ids_on_b(rooms, rooms.public)  # ... and unseen
    # The twin: Alice's redaction of her own message applies on B.
    alice_msg = await pdu_from_a(rooms, rooms.public, "m.room.message", {"body": "oops"})
    assert await send_from_a(rooms, alice_msg) == {}
    own = await pdu_from_a(rooms, rooms.public, "m.room.redaction", {"redacts": alice_msg.event_id})
    assert await send_from_a(rooms, own) == {}
    assert _content_on_b(rooms, rooms.public, alice_msg.event_id) == {}
    assert own.event_id in _ids_on_b(rooms, rooms.public)


async def test_redaction_from_a_public_room_cannot_reach_a_private_rooms_event(
    rooms: Rooms,
) -> None:
    secret = rooms.bob.send(rooms.private, "private words")
    # Alice moderates the public room, so power is not what stops her.
    levels = rooms.bob.call("GET", f"/rooms/{rooms.public}/state/m.room.power_levels")
    levels["users"][rooms.alice.user_id] = 100
    rooms.bob.call("PUT", f"/rooms/{rooms.public}/state/m.room.power_levels", json=levels)
    across = await pdu_from_a(rooms, rooms.public, "m.room.redaction", {"redacts": secret})
    assert await send_from_a(rooms, across) == {}
    assert _content_on_b(rooms, rooms.private, secret)["body"] == "private words"
    assert "private words" in rooms.bob.bodies(rooms.private)
    assert across.event_id not in _ids_on_b(rooms, rooms.public)
    # The twin: the moderator's redaction of Bob's event in the public room applies.
    bob_msg = rooms.bob.send(rooms.public, "moderated")
    moderated = await pdu_from_a(rooms, rooms.public, "m.room.redaction", {"redacts": bob_msg})
    assert await send_from_a(rooms, moderated) == {}
    assert _content_on_b(rooms, rooms.public, bob_msg) == {}
    assert moderated.event_id in _ids_on_b(rooms, rooms.public)
