"""Idempotent state and joins; `m.room.canonical_alias` validated; deleting an alias."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, sync, timeline, uid


async def put_state(
    api: ClientApi, headers: dict[str, str], room_id: str, type_: str, content: Any, key: str = ""
) -> Any:
    return await api.http.put(
        f"{V3}/rooms/{room_id}/state/{type_}/{key}", headers=headers, json=content
    )


async def get_state(api: ClientApi, headers: dict[str, str], room_id: str, type_: str) -> Any:
    return await api.http.get(f"{V3}/rooms/{room_id}/state/{type_}/", headers=headers)


async def add_alias(api: ClientApi, headers: dict[str, str], alias: str, room_id: str) -> None:
    r = await api.http.put(
        f"{V3}/directory/room/{quote(alias)}", headers=headers, json={"room_id": room_id}
    )
    assert r.status_code == 200, r.text


async def test_same_state_twice_makes_no_new_event(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    first = await put_state(api, alice, room_id, "m.room.topic", {"topic": "a"})
    since = (await sync(api, alice))["next_batch"]
    again = await put_state(api, alice, room_id, "m.room.topic", {"topic": "a"})
    assert (again.status_code, again.json()) == (200, first.json())
    assert room_id not in (await sync(api, alice, since))["rooms"]["join"]
    # Other content, or the same content from another sender, is a new event.
    other = await put_state(api, alice, room_id, "m.room.topic", {"topic": "b"})
    assert other.json()["event_id"] != first.json()["event_id"]
    back = await put_state(api, alice, room_id, "m.room.topic", {"topic": "a"})
    assert back.json()["event_id"] not in (first.json()["event_id"], other.json()["event_id"])
    r = await put_state(
        api,
        alice,
        room_id,
        "m.room.power_levels",
        {
            **(await get_state(api, alice, room_id, "m.room.power_levels")).json(),
            "users": {uid("bob"): 100},
        },
    )
    assert r.status_code == 200, r.text
    by_bob = await put_state(api, bob, room_id, "m.room.topic", {"topic": "a"})
    assert by_bob.status_code == 200, by_bob.text
    assert by_bob.json()["event_id"] != back.json()["event_id"]


async def test_joining_twice_makes_no_new_event(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    r1 = await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    since = (await sync(api, alice))["next_batch"]
    r2 = await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    assert (r2.status_code, r2.json()) == (200, r1.json())
    assert room_id not in (await sync(api, alice, since))["rooms"]["join"]
    # After a leave, joining again is a new event.
    r = await api.http.post(f"{V3}/rooms/{room_id}/leave", headers=bob, json={})
    assert r.status_code == 200
    r3 = await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    assert r3.json()["room_id"] == room_id
    events = timeline(await sync(api, alice, since), room_id)
    memberships = [e["content"]["membership"] for e in events if e["type"] == "m.room.member"]
    assert memberships == ["leave", "join"]


async def test_canonical_alias_must_point_at_the_room(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    other = await create_room(api, alice)
    await add_alias(api, alice, "#mine:relay.test", room_id)
    await add_alias(api, alice, "#alt:relay.test", room_id)
    await add_alias(api, alice, "#elsewhere:relay.test", other)
    for content in (
        {"alias": "#missing:relay.test"},
        {"alias": "#elsewhere:relay.test"},
        {"alias": "#mine:relay.test", "alt_aliases": ["#missing:relay.test"]},
        {"alt_aliases": ["#alt:relay.test", "#elsewhere:relay.test"]},
    ):
        r = await put_state(api, alice, room_id, "m.room.canonical_alias", content)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_ALIAS"), content
    for content in (
        {"alias": "no-sigil"},
        {"alias": 5},
        {"alt_aliases": "#alt:relay.test"},
        {"alt_aliases": [5]},
        {"alt_aliases": ["#"]},
    ):
        r = await put_state(api, alice, room_id, "m.room.canonical_alias", content)
        assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM"), content
    r = await get_state(api, alice, room_id, "m.room.canonical_alias")
    assert r.status_code == 404  # nothing was set by the refused requests

    good = {"alias": "#mine:relay.test", "alt_aliases": ["#alt:relay.test"]}
    r = await put_state(api, alice, room_id, "m.room.canonical_alias", good)
    assert r.status_code == 200, r.text
    assert (await get_state(api, alice, room_id, "m.room.canonical_alias")).json() == good
    # Clearing it is allowed (no alias is new).
    r = await put_state(api, alice, room_id, "m.room.canonical_alias", {})
    assert r.status_code == 200


async def test_deleting_an_alias_removes_it_from_the_canonical_alias(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    await add_alias(api, alice, "#main:relay.test", room_id)
    await add_alias(api, alice, "#alt:relay.test", room_id)
    content = {"alias": "#main:relay.test", "alt_aliases": ["#alt:relay.test"]}
    assert (
        await put_state(api, alice, room_id, "m.room.canonical_alias", content)
    ).status_code == 200
    r = await api.http.delete(f"{V3}/directory/room/%23alt:relay.test", headers=alice)
    assert r.status_code == 200
    r = await get_state(api, alice, room_id, "m.room.canonical_alias")
    assert r.json() == {"alias": "#main:relay.test"}  # an emptied list goes (as Synapse)
    r = await api.http.delete(f"{V3}/directory/room/%23main:relay.test", headers=alice)
    assert r.status_code == 200
    r = await get_state(api, alice, room_id, "m.room.canonical_alias")
    assert r.json() == {}
    # The old names, now gone, can't be set again.
    r = await put_state(api, alice, room_id, "m.room.canonical_alias", content)
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_ALIAS")
