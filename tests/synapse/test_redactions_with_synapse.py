"""Differential: the same redaction requests against a real Synapse and against the relay,
each with its own local users; the answers (status, errcode) must be the same, and
nothing a refused request names may change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.matrix_client import V3, MatrixUser
from tests.synapse.conftest import Pair


def _redact(user: MatrixUser, room_id: str, event_id: str, txn: str) -> tuple[int, str | None]:
    path = f"{V3}/rooms/{room_id}/redact/{quote(event_id, safe='')}/{txn}"
    r = user.http.put(path, json={"reason": "r"})
    return r.status_code, r.json().get("errcode")


def _event(user: MatrixUser, room_id: str, event_id: str) -> dict[str, Any]:
    return user.call("GET", f"/rooms/{room_id}/event/{quote(event_id, safe='')}")["content"]


def _scenario(login: Callable[[str], MatrixUser], version: str) -> dict[str, Any]:
    """What one server answers; Alice creates the rooms, Bob (power 0) joins the public one,
    Mallory has a room of her own."""
    alice, bob, mallory = login("alice"), login("bob"), login("mallory")
    private = alice.create_room(preset="private_chat", room_version=version)
    secret = alice.send(private, "secret")
    public = alice.create_room(preset="public_chat", room_version=version)
    bob.join(public)
    alice_msg = alice.send(public, "alice's")
    bob_msg = bob.send(public, "bob's")
    own = mallory.create_room(room_version=version)
    state = alice.call("GET", f"/rooms/{public}/state")
    [create] = [e["event_id"] for e in state if e["type"] == "m.room.create"]
    unknown = "$" + "x" * 43
    answers = {
        "another room's event": _redact(mallory, own, secret, "m1"),
        "unknown event, no power": _redact(bob, public, unknown, "b1"),
        "unknown event of a server, no power": _redact(bob, public, "$u:example.org", "b4"),
        "someone else's event, no power": _redact(bob, public, alice_msg, "b2"),
        "the create event": _redact(alice, public, create, "a1"),
        "own event, no power": _redact(bob, public, bob_msg, "b3"),
        "unknown event, with power": _redact(alice, public, unknown, "a2"),
    }
    contents = {
        "secret": _event(alice, private, secret),
        "alice's": _event(alice, public, alice_msg),
        "bob's": _event(alice, public, bob_msg),
    }
    return {"answers": answers, "contents": contents}


@pytest.mark.parametrize("version", ["12", "11", "10", "9", "3", "1"])
def test_local_redaction_answers_match_synapse(pair: Pair, version: str) -> None:
    """In rooms of several versions: v1 (the redact level is an auth rule), v3 (event ids
    with `/`), v9-v12."""
    on_synapse = _scenario(pair.synapse_user, version)
    on_relay = _scenario(pair.relay_user, version)
    assert on_relay["answers"] == on_synapse["answers"]
    assert on_synapse["answers"]["another room's event"] == (400, "M_UNKNOWN")
    assert on_relay["contents"] == on_synapse["contents"]
    assert on_relay["contents"]["secret"]["body"] == "secret"
    assert on_relay["contents"]["alice's"]["body"] == "alice's"
    assert on_relay["contents"]["bob's"] == {}
