"""Differential: the same redaction requests against a real Synapse and against the relay,
each with its own local users; the answers (status, errcode) must be the same, and
nothing a refused request names may change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.matrix_client import V3, MatrixUser
from tests.synapse.conftest import Pair


def _redact(user: MatrixUser, room_id: str, event_id: str, txn: str) -> tuple[int, str | None]:
    r = user.http.put(f"{V3}/rooms/{room_id}/redact/{event_id}/{txn}", json={"reason": "r"})
    return r.status_code, r.json().get("errcode")


def _scenario(login: Callable[[str], MatrixUser]) -> dict[str, Any]:
    """What one server answers; Alice creates the rooms, Bob (power 0) joins the public one,
    Mallory has a room of her own."""
    alice, bob, mallory = login("alice"), login("bob"), login("mallory")
    private = alice.create_room(preset="private_chat")
    secret = alice.send(private, "secret")
    public = alice.create_room(preset="public_chat")
    bob.join(public)
    alice_msg = alice.send(public, "alice's")
    bob_msg = bob.send(public, "bob's")
    own = mallory.create_room()
    state = alice.call("GET", f"/rooms/{public}/state")
    [create] = [e["event_id"] for e in state if e["type"] == "m.room.create"]
    unknown = "$" + "x" * 43
    answers = {
        "another room's event": _redact(mallory, own, secret, "m1"),
        "unknown event, no power": _redact(bob, public, unknown, "b1"),
        "someone else's event, no power": _redact(bob, public, alice_msg, "b2"),
        "the create event": _redact(alice, public, create, "a1"),
        "own event, no power": _redact(bob, public, bob_msg, "b3"),
        "unknown event, with power": _redact(alice, public, unknown, "a2"),
    }
    contents = {
        "secret": alice.call("GET", f"/rooms/{private}/event/{secret}")["content"],
        "alice's": alice.call("GET", f"/rooms/{public}/event/{alice_msg}")["content"],
        "bob's": alice.call("GET", f"/rooms/{public}/event/{bob_msg}")["content"],
    }
    return {"answers": answers, "contents": contents}


def test_local_redaction_answers_match_synapse(pair: Pair) -> None:
    on_synapse = _scenario(pair.synapse_user)
    on_relay = _scenario(pair.relay_user)
    assert on_relay["answers"] == on_synapse["answers"]
    assert on_synapse["answers"]["another room's event"] == (400, "M_UNKNOWN")
    assert on_relay["contents"] == on_synapse["contents"]
    assert on_relay["contents"]["secret"]["body"] == "secret"
    assert on_relay["contents"]["alice's"]["body"] == "alice's"
    assert on_relay["contents"]["bob's"] == {}
