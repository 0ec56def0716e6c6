"""Account data (global and per room) and presence, through the API and /sync."""

from __future__ import annotations

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, sync, uid


async def test_global_account_data_round_trips_and_syncs(api: ClientApi) -> None:
    alice = await api.login("alice")
    path = f"{V3}/user/{uid('alice')}/account_data/org.example.settings"
    r = await api.http.get(path, headers=alice)
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    since = (await sync(api, alice))["next_batch"]
    assert (await api.http.put(path, headers=alice, json={"theme": "dark"})).status_code == 200
    assert (await api.http.get(path, headers=alice)).json() == {"theme": "dark"}
    body = await sync(api, alice, since)
    assert body["account_data"]["events"] == [
        {"type": "org.example.settings", "content": {"theme": "dark"}}
    ]
    assert (await sync(api, alice, body["next_batch"]))["account_data"]["events"] == []


async def test_room_account_data_round_trips_and_syncs(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    since = (await sync(api, alice))["next_batch"]
    path = f"{V3}/user/{uid('alice')}/rooms/{room_id}/account_data/m.tag.like"
    assert (await api.http.put(path, headers=alice, json={"x": 1})).status_code == 200
    assert (await api.http.get(path, headers=alice)).json() == {"x": 1}
    body = await sync(api, alice, since)
    assert body["rooms"]["join"][room_id]["account_data"]["events"] == [
        {"type": "m.tag.like", "content": {"x": 1}}
    ]
    assert body["account_data"]["events"] == []


async def test_account_data_of_another_user_is_forbidden(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.login("bob")
    r = await api.http.put(f"{V3}/user/{uid('bob')}/account_data/x", headers=alice, json={})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await api.http.get(f"{V3}/user/{uid('bob')}/account_data/x", headers=alice)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_server_kept_types_are_refused_by_generic_endpoint(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    r = await api.http.put(
        f"{V3}/user/{uid('alice')}/rooms/{room_id}/account_data/m.fully_read",
        headers=alice,
        json={"event_id": "$x"},
    )
    assert (r.status_code, r.json()["errcode"]) == (405, "M_BAD_JSON")
    r = await api.http.put(
        f"{V3}/user/{uid('alice')}/account_data/m.push_rules", headers=alice, json={}
    )
    assert (r.status_code, r.json()["errcode"]) == (405, "M_BAD_JSON")


async def test_room_account_data_needs_a_room_id(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.put(
        f"{V3}/user/{uid('alice')}/rooms/not-a-room/account_data/x", headers=alice, json={}
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_presence_set_get_and_synced_to_room_mates(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, bob))["next_batch"]
    r = await api.http.put(
        f"{V3}/presence/{uid('alice')}/status",
        headers=alice,
        json={"presence": "unavailable", "status_msg": "lunch"},
    )
    assert r.status_code == 200, r.text
    r = await api.http.get(f"{V3}/presence/{uid('alice')}/status", headers=bob)
    assert r.json()["presence"] == "unavailable"
    assert r.json()["status_msg"] == "lunch"
    events = (await sync(api, bob, since))["presence"]["events"]
    assert [(e["sender"], e["content"]["presence"]) for e in events] == [
        (uid("alice"), "unavailable")
    ]
    r = await api.http.put(
        f"{V3}/presence/{uid('bob')}/status", headers=alice, json={"presence": "online"}
    )
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await api.http.put(
        f"{V3}/presence/{uid('alice')}/status", headers=alice, json={"presence": "busy"}
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_syncing_marks_user_online(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    r = await api.http.get(f"{V3}/presence/{uid('alice')}/status", headers=bob)
    assert (r.status_code, r.json()) == (200, {"presence": "offline"})  # as Synapse
    since = (await sync(api, bob))["next_batch"]
    await sync(api, alice, set_presence="online")
    r = await api.http.get(f"{V3}/presence/{uid('alice')}/status", headers=bob)
    assert r.json()["presence"] == "online"
    assert r.json()["currently_active"] is True
    events = (await sync(api, bob, since))["presence"]["events"]
    assert (uid("alice"), "online") in [(e["sender"], e["content"]["presence"]) for e in events]


async def test_presence_of_stranger_is_forbidden(api: ClientApi) -> None:
    alice = await api.login("alice")
    eve = await api.login("eve")
    await api.http.put(
        f"{V3}/presence/{uid('alice')}/status", headers=alice, json={"presence": "online"}
    )
    r = await api.http.get(f"{V3}/presence/{uid('alice')}/status", headers=eve)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_initial_sync_carries_default_push_rules(api: ClientApi) -> None:
    alice = await api.login("alice")
    events = (await sync(api, alice))["account_data"]["events"]
    [rules] = [e for e in events if e["type"] == "m.push_rules"]
    assert ".m.rule.master" in {r["rule_id"] for r in rules["content"]["global"]["override"]}
