"""An erased relay user's history as a real Synapse gets it: a Synapse that joins the room
after the erasure backfills the erased user's message from the relay in its redacted
form; the relay's user who was in the room when it was written still reads it whole."""

from __future__ import annotations

from typing import Any

from tests.integration.matrix_client import V3, MatrixUser
from tests.synapse.conftest import Pair


def _erase(user: MatrixUser, localpart: str) -> None:
    r = user.http.post(f"{V3}/account/deactivate", json={"erase": True})
    assert r.status_code == 401, r.text
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": "pw",
        "session": r.json()["session"],
    }
    r = user.http.post(f"{V3}/account/deactivate", json={"erase": True, "auth": auth})
    assert r.status_code == 200, r.text


def _from(user: MatrixUser, room_id: str, sender: str) -> list[dict[str, Any]]:
    return [
        e for e in user.messages(room_id) if e["type"] == "m.room.message" and e["sender"] == sender
    ]


def test_synapse_joining_after_an_erasure_backfills_the_erased_users_events_redacted(
    module_pair: Pair,
) -> None:
    pair = module_pair
    host = pair.relay_user("erasure_host")
    witness = pair.relay_user("erasure_witness")
    gone = pair.relay_user("erased_one")
    room_id = host.create_room(preset="public_chat", name="before and after")
    witness.join(room_id)
    gone.join(room_id)
    gone.send(room_id, "words to forget")
    host.send(room_id, "the host speaks")
    _erase(gone, "erased_one")

    late = pair.synapse_user("latecomer")
    late.join(room_id, via=[pair.relay.server_name])
    late.wait_for_bodies(room_id, {"the host speaks"})
    [seen_late] = _from(late, room_id, gone.user_id)
    assert seen_late["content"] == {}
    # The twin: the relay's user who was there when it was written.
    [seen_then] = _from(witness, room_id, gone.user_id)
    assert seen_then["content"]["body"] == "words to forget"
