"""The relay federates with a real Synapse: invites, joins and messages both ways."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from tests.integration.matrix_client import MatrixUser
from tests.synapse.conftest import Pair


def _exchange(pair: Pair, room_id: str, synapse_user, relay_user) -> None:
    for i in range(5):
        synapse_user.send(room_id, f"from synapse {i}")
        relay_user.send(room_id, f"from relay {i}")
    expected = {f"from synapse {i}" for i in range(5)} | {f"from relay {i}" for i in range(5)}
    for user in (synapse_user, relay_user):
        seen = [b for b in user.wait_for_bodies(room_id, expected, timeout=60) if b[:5] == "from "]
        assert sorted(seen) == sorted(expected), f"{user.user_id}: {seen}"
    # Each side's own /sync shows the other side's messages.
    relay_user.since = None
    body = relay_user.sync(timeout_ms=0)
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    assert any(e["content"].get("body") == "from synapse 4" for e in timeline)


def _state_content(user: MatrixUser, room_id: str, event_type: str) -> dict | None:
    r = user.http.get(f"/_matrix/client/v3/rooms/{room_id}/state/{event_type}/")
    return r.json() if r.status_code == 200 else None


def _wait_state(user: MatrixUser, room_id: str, event_type: str, key: str, value: str) -> None:
    deadline = time.monotonic() + 60
    while (_state_content(user, room_id, event_type) or {}).get(key) != value:
        assert time.monotonic() < deadline, f"{user.user_id} never saw {event_type} {value}"
        time.sleep(0.5)


def _event_content(user: MatrixUser, room_id: str, event_id: str) -> dict:
    path = f"/rooms/{room_id}/event/{quote(event_id, safe='')}"
    return user.call("GET", path)["content"]


def _state_and_redactions_both_ways(room_id: str, synapse_user, relay_user) -> None:
    """State set on either side reaches the other; a redaction by the relay's user of their
    own message is applied on Synapse too. Synapse's user makes the relay's a moderator."""
    levels = _state_content(synapse_user, room_id, "m.room.power_levels") or {}
    levels.setdefault("users", {})[relay_user.user_id] = 50
    synapse_user.call("PUT", f"/rooms/{room_id}/state/m.room.power_levels/", json=levels)
    deadline = time.monotonic() + 60
    while relay_user.user_id not in (
        _state_content(relay_user, room_id, "m.room.power_levels") or {}
    ).get("users", {}):
        assert time.monotonic() < deadline, "the relay never saw the new power levels"
        time.sleep(0.5)
    relay_user.call("PUT", f"/rooms/{room_id}/state/m.room.topic/", json={"topic": "by relay"})
    _wait_state(synapse_user, room_id, "m.room.topic", "topic", "by relay")
    synapse_user.call("PUT", f"/rooms/{room_id}/state/m.room.name/", json={"name": "by hq"})
    _wait_state(relay_user, room_id, "m.room.name", "name", "by hq")
    mistake = relay_user.send(room_id, "oops")
    synapse_user.wait_for_bodies(room_id, {"oops"}, timeout=60)
    path = f"/rooms/{room_id}/redact/{quote(mistake, safe='')}/r1"
    relay_user.call("PUT", path, json={"reason": "typo"})
    deadline = time.monotonic() + 60
    while _event_content(synapse_user, room_id, mistake) != {}:
        assert time.monotonic() < deadline, "Synapse never applied the relay's redaction"
        time.sleep(0.5)
    assert _event_content(relay_user, room_id, mistake) == {}


@pytest.mark.parametrize("version", [str(v) for v in range(12, 0, -1)])
def test_synapse_user_invites_relay_user(module_pair: Pair, version: str) -> None:
    pair = module_pair
    hq = pair.synapse_user(f"hq{version}")
    field = pair.relay_user(f"field{version}")
    room_id = hq.create_room(name="sitrep", preset="private_chat", room_version=version)
    hq.send(room_id, "before the relay joined")
    hq.invite(room_id, field.user_id)
    field.wait_for_invite(room_id)
    field.join(room_id)
    # The history from before the join comes from Synapse's /backfill as the relay's
    # user pages back: down to the room's creation, in order.
    history = field.messages(room_id, limit=3)
    assert history[0]["type"] == "m.room.create"
    assert [e["content"].get("body") for e in history if e["type"] == "m.room.message"] == [
        "before the relay joined"
    ]
    # The room really is of that version, as both sides see it.
    for user in (hq, field):
        assert _state_content(user, room_id, "m.room.create")["room_version"] == version
    _exchange(pair, room_id, hq, field)
    _state_and_redactions_both_ways(room_id, hq, field)


@pytest.mark.parametrize("version", [str(v) for v in range(12, 0, -1)])
def test_relay_user_creates_room_and_synapse_user_joins(module_pair: Pair, version: str) -> None:
    pair = module_pair
    field = pair.relay_user(f"kit{version}")
    hq = pair.synapse_user(f"office{version}")
    room_id = field.create_room(name="kit room", preset="private_chat", room_version=version)
    field.invite(room_id, hq.user_id)
    hq.wait_for_invite(room_id)
    hq.join(room_id)
    for user in (hq, field):
        assert _state_content(user, room_id, "m.room.create")["room_version"] == version
    _exchange(pair, room_id, hq, field)


def _space_and_restricted_room(owner: MatrixUser, version: str) -> tuple[str, str]:
    """A public space and a room only its members may join (without an invite)."""
    space = owner.create_room(preset="public_chat", room_version=version)
    allow = [{"type": "m.room_membership", "room_id": space}]
    room_id = owner.create_room(
        preset="private_chat",
        room_version=version,
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {"join_rule": "restricted", "allow": allow},
            }
        ],
    )
    return space, room_id


@pytest.mark.parametrize("version", ["10", "9", "8"])
def test_relay_user_joins_a_restricted_synapse_room_through_its_space(
    module_pair: Pair, version: str
) -> None:
    """Rooms v8+: a room restricted to the members of a space; the relay's user joins the
    space, then the room without an invite (Synapse authorises and countersigns the join)."""
    pair = module_pair
    hq = pair.synapse_user(f"chief{version}")
    field = pair.relay_user(f"scout{version}")
    space, room_id = _space_and_restricted_room(hq, version)
    server = pair.synapse.server_name
    field.join(space, via=[server])
    field.join(room_id, via=[server])
    state = field.call("GET", f"/rooms/{room_id}/state/m.room.member/{field.user_id}")
    assert state["membership"] == "join"
    assert state["join_authorised_via_users_server"] == hq.user_id
    _exchange(pair, room_id, hq, field)


@pytest.mark.parametrize("version", ["12", "10", "8"])
def test_synapse_user_joins_a_restricted_relay_room_through_its_space(
    module_pair: Pair, version: str
) -> None:
    """The other way: the relay hosts the space and the restricted room; Synapse's user
    joins the space, then the room without an invite. The relay names its own user as
    the voucher in make_join and countersigns the join in send_join; a user outside the
    space is refused at make_join."""
    pair = module_pair
    hq = pair.relay_user(f"base{version}")
    visitor = pair.synapse_user(f"guest{version}")
    outsider = pair.synapse_user(f"outsider{version}")
    space, room_id = _space_and_restricted_room(hq, version)
    server = pair.relay.server_name
    visitor.join(space, via=[server])
    visitor.join(room_id, via=[server])
    state = hq.call("GET", f"/rooms/{room_id}/state/m.room.member/{visitor.user_id}")
    assert state["membership"] == "join"
    assert state["join_authorised_via_users_server"] == hq.user_id
    _exchange(pair, room_id, visitor, hq)
    r = outsider.http.post(
        f"/_matrix/client/v3/join/{room_id}", params={"server_name": server}, json={}
    )
    assert r.status_code == 403, r.text
