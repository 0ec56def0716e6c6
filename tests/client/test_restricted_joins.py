"""Restricted rooms (Element's "Space members" rooms) on one relay: members of the
allowed space join, vouched for by one of our users who may invite; others are refused
(across federation: tests/synapse/test_restricted_joins_with_synapse.py)."""

from __future__ import annotations

from typing import Any

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, uid


def _restricted(space: str, rule: str = "restricted") -> list[dict[str, Any]]:
    return [
        {
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {
                "join_rule": rule,
                "allow": [{"type": "m.room_membership", "room_id": space}],
            },
        }
    ]


async def _join(api: ClientApi, headers: dict[str, str], room: str) -> tuple[int, Any]:
    r = await api.http.post(f"{V3}/join/{room}", headers=headers, json={})
    return r.status_code, r.json()


async def test_space_members_join_vouched_for_and_others_are_refused(api: ClientApi) -> None:
    alice, bob, carol = await api.login("alice"), await api.login("bob"), await api.login("carol")
    space = await create_room(
        api, alice, preset="public_chat", creation_content={"type": "m.space"}
    )
    for version, rule in (("8", "restricted"), ("10", "knock_restricted"), ("12", "restricted")):
        room = await create_room(
            api, alice, room_version=version, initial_state=_restricted(space, rule)
        )
        status, answer = await _join(api, bob, room)
        assert (status, answer["errcode"]) == (403, "M_FORBIDDEN"), version
        await join(api, bob, space)
        assert await _join(api, bob, room) == (200, {"room_id": room}), version
        r = await api.http.get(f"{V3}/rooms/{room}/state/m.room.member/{uid('bob')}", headers=bob)
        assert r.json()["join_authorised_via_users_server"] == uid("alice")
        # Carol, not in the space, still may not.
        status, answer = await _join(api, carol, room)
        assert (status, answer["errcode"]) == (403, "M_FORBIDDEN")
        # Invited, she needs nobody to vouch for her.
        r = await api.http.post(
            f"{V3}/rooms/{room}/invite", headers=alice, json={"user_id": uid("carol")}
        )
        assert r.status_code == 200
        assert await _join(api, carol, room) == (200, {"room_id": room})
        r = await api.http.get(
            f"{V3}/rooms/{room}/state/m.room.member/{uid('carol')}", headers=carol
        )
        assert "join_authorised_via_users_server" not in r.json()
        r = await api.http.post(f"{V3}/rooms/{space}/leave", headers=bob, json={})
        assert r.status_code == 200


async def test_nobody_who_may_invite_means_nobody_can_vouch(api: ClientApi) -> None:
    alice, bob = await api.login("alice"), await api.login("bob")
    space = await create_room(api, alice, preset="public_chat")
    room = await create_room(
        api,
        alice,
        room_version="10",
        initial_state=_restricted(space),
        power_level_content_override={"invite": 101, "users": {uid("alice"): 100}},
    )
    await join(api, bob, space)
    status, answer = await _join(api, bob, room)
    assert (status, answer["errcode"]) == (400, "M_UNABLE_TO_GRANT_JOIN")
