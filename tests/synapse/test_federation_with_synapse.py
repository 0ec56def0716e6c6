"""The relay federates with a real Synapse: invites, joins and messages both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synapse.conftest import Pair, start_pair


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


@pytest.mark.parametrize("version", ["12", "11", "10"])
def test_synapse_user_invites_relay_user(tmp_path: Path, version: str) -> None:
    pair = start_pair(tmp_path, room_version=version)
    try:
        hq = pair.synapse_user("hq")
        field = pair.relay_user("field")
        room_id = hq.create_room(name="sitrep", preset="private_chat")
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
        _exchange(pair, room_id, hq, field)
    finally:
        pair.relay.kill()
        pair.synapse.kill()


def test_relay_user_creates_room_and_synapse_user_joins(pair: Pair) -> None:
    field = pair.relay_user("field")
    hq = pair.synapse_user("hq")
    room_id = field.create_room(name="kit room", preset="private_chat")
    field.invite(room_id, hq.user_id)
    hq.wait_for_invite(room_id)
    hq.join(room_id)
    _exchange(pair, room_id, hq, field)
