"""Sync filters: upload/download, and their effect on /sync."""

from __future__ import annotations

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, bodies, create_room, join, send, sync, timeline, uid


async def test_filter_round_trips_and_is_usable_by_id(api: ClientApi) -> None:
    alice = await api.login("alice")
    definition = {"room": {"timeline": {"limit": 1}}, "presence": {"not_types": ["*"]}}
    r = await api.http.post(f"{V3}/user/{uid('alice')}/filter", headers=alice, json=definition)
    assert r.status_code == 200, r.text
    filter_id = r.json()["filter_id"]
    assert isinstance(filter_id, str)
    r = await api.http.get(f"{V3}/user/{uid('alice')}/filter/{filter_id}", headers=alice)
    assert r.json() == definition
    room_id = await create_room(api, alice)
    await send(api, alice, room_id, "a")
    await send(api, alice, room_id, "b")
    room = (await sync(api, alice, filter=filter_id))["rooms"]["join"][room_id]
    assert bodies(room["timeline"]["events"]) == ["b"]
    assert room["timeline"]["limited"] is True


async def test_filter_for_another_user_is_forbidden(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.login("bob")
    r = await api.http.post(f"{V3}/user/{uid('bob')}/filter", headers=alice, json={})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await api.http.get(f"{V3}/user/{uid('bob')}/filter/0", headers=alice)
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_unknown_filter_id_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{V3}/user/{uid('alice')}/filter/99", headers=alice)
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"filter": "99"})
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_malformed_filter_is_bad_json(api: ClientApi) -> None:
    alice = await api.login("alice")
    for bad in (
        {"room": {"timeline": {"limit": "ten"}}},
        {"room": {"state": {"types": "m.room.name"}}},
        {"event_format": "xml"},
        {"room": {"state": {"lazy_load_members": "yes"}}},
    ):
        r = await api.http.post(f"{V3}/user/{uid('alice')}/filter", headers=alice, json=bad)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON"), bad
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"filter": "{not json"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")


async def test_inline_timeline_types_and_not_types(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, name="x")
    await send(api, alice, room_id, "hello")
    only_messages = {"room": {"timeline": {"types": ["m.room.message"]}}}
    events = timeline(await sync(api, alice, filter=only_messages), room_id)
    assert [e["type"] for e in events] == ["m.room.message"]
    no_members = {"room": {"timeline": {"not_types": ["m.room.mem*"], "limit": 50}}}
    events = timeline(await sync(api, alice, filter=no_members), room_id)
    assert "m.room.member" not in {e["type"] for e in events}
    assert "m.room.create" in {e["type"] for e in events}


async def test_state_types_and_not_types(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, name="x")
    await send(api, alice, room_id, "hello")
    flt = {"room": {"timeline": {"limit": 1}, "state": {"types": ["m.room.name"]}}}
    state = (await sync(api, alice, filter=flt))["rooms"]["join"][room_id]["state"]["events"]
    assert [e["type"] for e in state] == ["m.room.name"]
    flt = {"room": {"timeline": {"limit": 1}, "state": {"not_types": ["m.room.name"]}}}
    state = (await sync(api, alice, filter=flt))["rooms"]["join"][room_id]["state"]["events"]
    assert "m.room.name" not in {e["type"] for e in state}
    assert "m.room.create" in {e["type"] for e in state}


async def test_lazy_load_members_keeps_senders_and_self_only(api: ClientApi) -> None:
    alice = await api.login("alice")
    # Named: an unnamed room's heroes would come too (tests/client/test_sync_gaps.py).
    room_id = await create_room(api, alice, preset="public_chat", name="ops")
    for name in ("bob", "carol", "dave"):
        await join(api, await api.login(name), room_id)
    await send(api, await api.login("bob"), room_id, "from bob")
    flt = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    room = (await sync(api, alice, filter=flt))["rooms"]["join"][room_id]
    members = {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {uid("alice"), uid("bob")}
    assert room["summary"]["m.joined_member_count"] == 4
    eager = (await sync(api, alice, filter={"room": {"timeline": {"limit": 1}}}))["rooms"]
    members = {
        e["state_key"]
        for e in eager["join"][room_id]["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert members == {uid(n) for n in ("alice", "bob", "carol", "dave")}


async def test_room_filter_rooms_and_not_rooms(api: ClientApi) -> None:
    alice = await api.login("alice")
    one = await create_room(api, alice)
    two = await create_room(api, alice)
    assert set((await sync(api, alice, filter={"room": {"rooms": [one]}}))["rooms"]["join"]) == {
        one
    }
    body = await sync(api, alice, filter={"room": {"not_rooms": [one]}})
    assert set(body["rooms"]["join"]) == {two}


async def test_event_fields_trim_events(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    await send(api, alice, room_id, "hello")
    flt = {
        "event_fields": ["type", "content.body"],
        "room": {"timeline": {"types": ["m.room.message"]}},
    }
    assert timeline(await sync(api, alice, filter=flt), room_id) == [
        {"type": "m.room.message", "content": {"body": "hello"}}
    ]


async def test_account_data_and_presence_filters(api: ClientApi) -> None:
    alice = await api.login("alice")
    for type_ in ("org.example.keep", "org.example.drop"):
        r = await api.http.put(
            f"{V3}/user/{uid('alice')}/account_data/{type_}", headers=alice, json={"x": 1}
        )
        assert r.status_code == 200
    flt = {"account_data": {"types": ["org.example.*"], "not_types": ["org.example.drop"]}}
    flt["presence"] = {"types": []}
    body = await sync(api, alice, filter=flt, set_presence="online")
    assert [e["type"] for e in body["account_data"]["events"]] == ["org.example.keep"]
    assert body["presence"]["events"] == []
