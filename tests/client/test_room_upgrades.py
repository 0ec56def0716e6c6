"""`POST /rooms/{roomId}/upgrade`: tombstone, the new room's state, power levels, aliases,
tags, and the errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, sync, uid


async def state(
    api: ClientApi, headers: dict[str, str], room_id: str, type_: str, key: str = ""
) -> Any:
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/{type_}/{key}", headers=headers)
    return r.json() if r.status_code == 200 else r.status_code


async def upgrade(api: ClientApi, headers: dict[str, str], room_id: str, body: Any) -> Any:
    return await api.http.post(f"{V3}/rooms/{room_id}/upgrade", headers=headers, json=body)


@pytest.mark.parametrize(("old", "new"), [("10", "11"), ("11", "12"), ("12", "11")])
async def test_upgrade_carries_the_room_over(api: ClientApi, old: str, new: str) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    await api.login("carol")
    room_id = await create_room(
        api,
        alice,
        room_version=old,
        preset="public_chat",
        visibility="public",
        name="Ops",
        topic="field ops",
        room_alias_name="ops",
    )
    await join(api, bob, room_id)
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/ban", headers=alice, json={"user_id": uid("carol"), "reason": "spam"}
    )
    assert r.status_code == 200, r.text
    for user, headers, tag in (("alice", alice, "m.favourite"), ("bob", bob, "m.lowpriority")):
        r = await api.http.put(
            f"{V3}/user/{uid(user)}/rooms/{room_id}/tags/{tag}",
            headers=headers,
            json={"order": 0.1},
        )
        assert r.status_code == 200

    r = await upgrade(api, alice, room_id, {"new_version": new})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"replacement_room"}
    new_id = r.json()["replacement_room"]
    assert new_id != room_id

    # The old room: tombstone, canonical alias emptied, members can no longer talk.
    tombstone = await state(api, alice, room_id, "m.room.tombstone")
    assert tombstone == {"body": "This room has been replaced", "replacement_room": new_id}
    assert await state(api, alice, room_id, "m.room.canonical_alias") == {}
    old_levels = await state(api, alice, room_id, "m.room.power_levels")
    assert old_levels["events_default"] >= 50 and old_levels["invite"] >= 50
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/t1",
        headers=bob,
        json={"body": "x", "msgtype": "m.text"},
    )
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")

    # The new room: predecessor, the copied state, power levels, aliases, bans.
    create = await state(api, alice, new_id, "m.room.create")
    assert create["predecessor"] == {"room_id": room_id}
    assert create["room_version"] == new
    assert await state(api, alice, new_id, "m.room.name") == {"name": "Ops"}
    assert await state(api, alice, new_id, "m.room.topic") == {"topic": "field ops"}
    assert (await state(api, alice, new_id, "m.room.join_rules"))["join_rule"] == "public"
    assert await state(api, alice, new_id, "m.room.canonical_alias") == {"alias": "#ops:relay.test"}
    levels = await state(api, alice, new_id, "m.room.power_levels")
    if new == "12":
        assert uid("alice") not in levels["users"]  # a creator: privileged, never listed
    else:
        assert levels["users"][uid("alice")] == 100
    assert levels["events_default"] == 0
    r = await api.http.get(f"{V3}/directory/room/{quote('#ops:relay.test')}")
    assert r.json()["room_id"] == new_id
    assert (await state(api, alice, new_id, "m.room.member", uid("carol")))["membership"] == "ban"
    r = await api.http.get(f"{V3}/directory/list/room/{new_id}")
    assert r.json() == {"visibility": "public"}
    r = await api.http.get(f"{V3}/directory/list/room/{room_id}")
    assert r.json() == {"visibility": "private"}

    # Tags followed; bob can join the new room and finds his tag there.
    r = await api.http.get(f"{V3}/user/{uid('alice')}/rooms/{new_id}/tags", headers=alice)
    assert r.json() == {"tags": {"m.favourite": {"order": 0.1}}}
    await join(api, bob, new_id)
    body = await sync(api, bob)
    assert {"type": "m.tag", "content": {"tags": {"m.lowpriority": {"order": 0.1}}}} in body[
        "rooms"
    ]["join"][new_id]["account_data"]["events"]
    events = body["rooms"]["join"][room_id]["timeline"]["events"]
    assert any(e["type"] == "m.room.tombstone" for e in events)


async def test_upgrade_errors_change_nothing(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat", room_alias_name="keep")
    await join(api, bob, room_id)
    cases = [
        (alice, room_id, {}, 400, "M_MISSING_PARAM"),
        (alice, room_id, {"new_version": "999"}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
        (alice, room_id, {"new_version": 11}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
        (alice, "!nope:relay.test", {"new_version": "11"}, 404, "M_NOT_FOUND"),
        (bob, room_id, {"new_version": "11"}, 403, "M_FORBIDDEN"),
        (alice, room_id, {"new_version": "12", "additional_creators": "bob"}, 400, "M_FORBIDDEN"),
        (alice, room_id, {"new_version": "12", "additional_creators": [7]}, 400, "M_FORBIDDEN"),
        (alice, room_id, {"new_version": "12", "additional_creators": ["bob"]}, 400, "M_FORBIDDEN"),
    ]
    for headers, target, body, status, errcode in cases:
        r = await upgrade(api, headers, target, body)
        assert (r.status_code, r.json()["errcode"]) == (status, errcode), (target, body)
    r = await upgrade(api, alice, room_id, [1])
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")
    carol = await api.login("carol")
    r = await upgrade(api, carol, room_id, {"new_version": "11"})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    # Nothing happened: no tombstone, the alias still points at the room, no new room.
    assert await state(api, alice, room_id, "m.room.tombstone") == 404
    r = await api.http.get(f"{V3}/directory/room/{quote('#keep:relay.test')}")
    assert r.json()["room_id"] == room_id
    assert list((await sync(api, alice))["rooms"]["join"]) == [room_id]


async def test_upgrade_carries_the_users_room_push_rules(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    rules = f"{V3}/pushrules/global"
    r = await api.http.put(f"{rules}/room/{room_id}", headers=alice, json={"actions": []})
    assert r.status_code == 200, r.text
    mute = {
        "actions": [],
        "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
    }
    r = await api.http.put(f"{rules}/override/{room_id}", headers=alice, json=mute)
    assert r.status_code == 200, r.text
    r = await api.http.put(
        f"{rules}/override/other", headers=alice, json={**mute, "conditions": []}
    )
    assert r.status_code == 200, r.text

    new_id = (await upgrade(api, alice, room_id, {"new_version": "11"})).json()["replacement_room"]
    room_rule = (await api.http.get(f"{rules}/room/{new_id}", headers=alice)).json()
    assert room_rule["rule_id"] == new_id and room_rule["actions"] == []
    override = (await api.http.get(f"{rules}/override/{new_id}", headers=alice)).json()
    assert override["conditions"] == [{"kind": "event_match", "key": "room_id", "pattern": new_id}]
    # The old room's rules stay; the new ones sit right after them.
    ids = [
        r["rule_id"]
        for r in (await api.http.get(f"{V3}/pushrules/", headers=alice)).json()["global"][
            "override"
        ]
    ]
    assert ids.index(new_id) == ids.index(room_id) + 1
    assert (await api.http.get(f"{rules}/room/{room_id}", headers=alice)).status_code == 200


async def test_upgrade_to_v12_makes_the_additional_creators_creators(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, room_version="10", preset="public_chat")
    await join(api, bob, room_id)
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/state/m.room.power_levels/",
        headers=alice,
        json={"users": {uid("alice"): 100, uid("bob"): 50}},
    )
    assert r.status_code == 200, r.text
    body = {"new_version": "12", "additional_creators": [uid("bob")]}
    r = await upgrade(api, alice, room_id, body)
    assert r.status_code == 200, r.text
    new_id = r.json()["replacement_room"]
    create = await state(api, alice, new_id, "m.room.create")
    assert create["additional_creators"] == [uid("bob")]
    # Creators' power is implied: neither is listed in the new room's power levels.
    users = (await state(api, alice, new_id, "m.room.power_levels"))["users"]
    assert uid("alice") not in users and uid("bob") not in users
    # Bob, a creator, may now grant more power than his old 50 (once he has joined).
    await join(api, bob, new_id)
    r = await api.http.put(
        f"{V3}/rooms/{new_id}/state/m.room.power_levels/",
        headers=bob,
        json={"users": {uid("carol"): 100}, "state_default": 100},
    )
    assert r.status_code == 200, r.text


async def test_additional_creators_are_ignored_below_v12(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, room_version="10")
    body = {"new_version": "11", "additional_creators": "not even a list"}
    r = await upgrade(api, alice, room_id, body)
    assert r.status_code == 200, r.text
    create = await state(api, alice, r.json()["replacement_room"], "m.room.create")
    assert "additional_creators" not in create
