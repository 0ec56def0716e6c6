"""Room upgrades across federation, with a real Synapse on the other side: a room shared
with a Synapse user is upgraded on the relay, and a room shared with a relay user is
upgraded on Synapse. Each side must see the tombstone in the old room, find the new room
by its `predecessor`, join it over federation and talk in it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.matrix_client import V3, MatrixUser
from tests.support import wait_until
from tests.synapse.conftest import Pair


def _state(user: MatrixUser, room: str, type_: str, key: str = "") -> dict[str, Any] | None:
    r = user.http.get(f"{V3}/rooms/{room}/state/{type_}/{quote(key, safe='')}")
    return r.json() if r.status_code == 200 else None


def _upgrade(user: MatrixUser, room: str, version: str) -> str:
    return user.call("POST", f"/rooms/{room}/upgrade", json={"new_version": version})[
        "replacement_room"
    ]


def _create_event(user: MatrixUser, room: str) -> dict[str, Any]:
    events = user.call("GET", f"/rooms/{room}/state")
    return next(e for e in events if e["type"] == "m.room.create")


def _shared_room(owner: MatrixUser, guest: MatrixUser, via: str, version: str) -> str:
    room = owner.create_room(preset="public_chat", room_version=version, name="ops")
    wait_until(lambda: _try_join(guest, room, via), 60, "the guest to join over federation")
    return room


def _try_join(user: MatrixUser, room: str, via: str) -> bool:
    r = user.http.post(f"{V3}/join/{quote(room, safe='')}", params={"server_name": via}, json={})
    return r.status_code == 200


def _follow_upgrade(
    owner: MatrixUser, guest: MatrixUser, via: str, old: str, new: str, who: str
) -> tuple[str, str]:
    """Share a room of version `old` made by `owner`, upgrade it to `new`, and wait until
    `guest`'s server shows the tombstone and the old room closed to ordinary members,
    then has `guest` join the new room and checks its create event and copied name.
    The (old, new) room ids."""
    room = _shared_room(owner, guest, via, old)
    owner.send(room, "before the upgrade")
    guest.wait_for_bodies(room, {"before the upgrade"})
    replacement = _upgrade(owner, room, new)

    def tombstoned() -> bool:
        content = _state(guest, room, "m.room.tombstone")
        return bool(content) and content.get("replacement_room") == replacement

    wait_until(tombstoned, 60, f"{who} to see the tombstone")
    wait_until(
        lambda: (_state(guest, room, "m.room.power_levels") or {}).get("events_default", 0) >= 50,
        60,
        f"{who} to see the old room closed to ordinary members",
    )
    wait_until(lambda: _try_join(guest, replacement, via), 60, "joining the new room")
    create = _create_event(guest, replacement)
    assert create["content"]["predecessor"]["room_id"] == room
    assert create["content"].get("room_version", "1") == new
    assert _state(guest, replacement, "m.room.name") == {"name": "ops"}
    return room, replacement


@pytest.mark.parametrize(("old", "new"), [("10", "11"), ("10", "12")])
def test_relay_upgrades_a_room_a_synapse_user_shares(module_pair: Pair, old: str, new: str) -> None:
    owner = module_pair.relay_user(f"up-owner-{old}-{new}")
    guest = module_pair.synapse_user(f"up-guest-{old}-{new}")
    _, replacement = _follow_upgrade(
        owner, guest, module_pair.relay.server_name, old, new, "Synapse"
    )
    owner.send(replacement, "after the upgrade")
    guest.wait_for_bodies(replacement, {"after the upgrade"})
    guest.send(replacement, "heard you")
    owner.wait_for_bodies(replacement, {"heard you"})


@pytest.mark.parametrize(("old", "new"), [("10", "11"), ("9", "12")])
def test_synapse_upgrades_a_room_a_relay_user_shares(module_pair: Pair, old: str, new: str) -> None:
    owner = module_pair.synapse_user(f"sup-owner-{old}-{new}")
    guest = module_pair.relay_user(f"sup-guest-{old}-{new}")
    room, replacement = _follow_upgrade(
        owner, guest, module_pair.synapse.server_name, old, new, "the relay"
    )
    # The relay enforces the old room's new power levels: its user may no longer talk.
    r = guest.http.put(
        f"{V3}/rooms/{room}/send/m.room.message/after-tombstone",
        json={"msgtype": "m.text", "body": "too late"},
    )
    assert r.status_code == 403, r.text
    guest.send(replacement, "followed you")
    owner.wait_for_bodies(replacement, {"followed you"})


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"new_version": "999"},
        {"new_version": 12},
        {"new_version": "12", "additional_creators": "someone"},
        {"new_version": "12", "additional_creators": [7]},
        {"new_version": "12", "additional_creators": ["not-a-user-id"]},
        {"new_version": "11", "additional_creators": "ignored below v12"},
    ],
)
def test_upgrade_requests_answer_as_synapse_answers(module_pair: Pair, body: Any) -> None:
    """Differential: the same upgrade request to both servers, the same status and errcode."""
    answers = []
    for name, make_user in (
        ("relay", module_pair.relay_user),
        ("synapse", module_pair.synapse_user),
    ):
        user = make_user(f"updiff-{name}-{abs(hash(str(body))) % 10**8}")
        room = user.create_room(room_version="10")
        r = user.http.post(f"{V3}/rooms/{room}/upgrade", json=body)
        answers.append((r.status_code, r.json().get("errcode")))
    assert answers[0] == answers[1], answers
