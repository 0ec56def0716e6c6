"""Reading one room through the real app: /event, /context, /state, /members,
/joined_members and /joined_rooms."""

from __future__ import annotations

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import create_room, send

V3 = "/_matrix/client/v3"
ALICE = f"@alice:{SERVER_NAME}"
BOB = f"@bob:{SERVER_NAME}"
CAROL = f"@carol:{SERVER_NAME}"


async def test_get_event_returns_the_client_event(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    event_id = await send(api, alice, room_id, "hello")
    r = await api.http.get(f"{V3}/rooms/{room_id}/event/{event_id}", headers=alice)
    assert r.status_code == 200, r.text
    event = r.json()
    assert event["event_id"] == event_id
    assert event["content"]["body"] == "hello"
    assert event["sender"] == ALICE
    assert "age" in event["unsigned"]


async def test_get_unknown_event_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    r = await api.http.get(f"{V3}/rooms/{room_id}/event/$nope", headers=alice)
    assert r.status_code == 404
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_get_event_of_another_room_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_a = await create_room(api, alice)
    room_b = await create_room(api, alice)
    event_id = await send(api, alice, room_a, "in-a")
    r = await api.http.get(f"{V3}/rooms/{room_b}/event/{event_id}", headers=alice)
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_stranger_cannot_read_event_state_or_members(api: ClientApi) -> None:
    alice = await api.login("alice")
    eve = await api.login("eve")
    room_id = await create_room(api, alice)
    event_id = await send(api, alice, room_id, "private")
    for path in (
        f"/rooms/{room_id}/event/{event_id}",
        f"/rooms/{room_id}/context/{event_id}",
        f"/rooms/{room_id}/state",
        f"/rooms/{room_id}/state/m.room.create/",
        f"/rooms/{room_id}/members",
        f"/rooms/{room_id}/joined_members",
    ):
        r = await api.http.get(V3 + path, headers=eve)
        assert r.status_code == 403, path
        assert r.json()["errcode"] == "M_FORBIDDEN"


async def test_context_splits_the_limit_around_the_event(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    sent = [await send(api, alice, room_id, f"m{i}") for i in range(9)]
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/context/{sent[4]}", headers=alice, params={"limit": 4}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["event"]["event_id"] == sent[4]
    assert [e["event_id"] for e in body["events_before"]] == [sent[3], sent[2]]
    assert [e["event_id"] for e in body["events_after"]] == [sent[5], sent[6]]
    assert {(e["type"], e["state_key"]) for e in body["state"]} >= {
        ("m.room.create", ""),
        ("m.room.member", ALICE),
    }
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages",
        headers=alice,
        params={"dir": "b", "from": body["start"], "limit": 1},
    )
    assert [e["event_id"] for e in r.json()["chunk"]] == [sent[1]]
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages",
        headers=alice,
        params={"dir": "f", "from": body["end"], "limit": 1},
    )
    assert [e["event_id"] for e in r.json()["chunk"]] == [sent[7]]


async def test_context_of_unknown_event_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    r = await api.http.get(f"{V3}/rooms/{room_id}/context/$missing", headers=alice)
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_full_state_lists_current_state_events(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, name="Ops", topic="runbooks")
    r = await api.http.get(f"{V3}/rooms/{room_id}/state", headers=alice)
    assert r.status_code == 200, r.text
    keys = {(e["type"], e["state_key"]) for e in r.json()}
    assert {
        ("m.room.create", ""),
        ("m.room.member", ALICE),
        ("m.room.power_levels", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
    } <= keys
    assert all(e["room_id"] == room_id for e in r.json())


async def test_single_state_event_by_type_and_key(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, name="Ops")
    for path in ("state/m.room.name", "state/m.room.name/"):
        r = await api.http.get(f"{V3}/rooms/{room_id}/{path}", headers=alice)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == {"name": "Ops"}
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.member/{ALICE}", headers=alice)
    assert r.json()["membership"] == "join"
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/state/m.room.name", headers=alice, params={"format": "event"}
    )
    event = r.json()
    assert event["type"] == "m.room.name"
    assert event["state_key"] == ""
    assert event["content"] == {"name": "Ops"}
    assert event["event_id"].startswith("$")


async def test_missing_state_key_is_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.topic", headers=alice)
    assert r.status_code == 404
    assert r.json()["errcode"] == "M_NOT_FOUND"
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.member/{BOB}", headers=alice)
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_user_who_left_sees_state_as_it_was_when_they_left(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat", name="Before")
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    await api.http.post(f"{V3}/rooms/{room_id}/leave", headers=bob, json={})
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/state/m.room.name", headers=alice, json={"name": "After"}
    )
    assert r.status_code == 200
    r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.name", headers=bob)
    assert r.json() == {"name": "Before"}
    r = await api.http.get(f"{V3}/rooms/{room_id}/state", headers=bob)
    names = [e["content"] for e in r.json() if e["type"] == "m.room.name"]
    assert names == [{"name": "Before"}]
    r = await api.http.get(f"{V3}/rooms/{room_id}/joined_members", headers=bob)
    assert r.json()["errcode"] == "M_FORBIDDEN"


async def test_members_filters_by_membership(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    await api.login("carol")
    room_id = await create_room(api, alice, preset="public_chat", invite=[CAROL])
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})

    async def members(**params: str) -> dict[str, str]:
        r = await api.http.get(f"{V3}/rooms/{room_id}/members", headers=alice, params=params)
        assert r.status_code == 200, r.text
        return {e["state_key"]: e["content"]["membership"] for e in r.json()["chunk"]}

    assert await members() == {ALICE: "join", BOB: "join", CAROL: "invite"}
    assert await members(membership="join") == {ALICE: "join", BOB: "join"}
    assert await members(not_membership="join") == {CAROL: "invite"}
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/members", headers=alice, params={"membership": "bogus"}
    )
    assert r.json()["errcode"] == "M_INVALID_PARAM"


async def test_members_at_an_earlier_token(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=alice, params={"dir": "b", "limit": 1}
    )
    before_bob = r.json()["start"]
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/members", headers=alice, params={"at": before_bob}
    )
    assert [e["state_key"] for e in r.json()["chunk"]] == [ALICE]


async def test_joined_members_maps_users_to_profiles(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    r = await api.http.get(f"{V3}/rooms/{room_id}/joined_members", headers=bob)
    assert r.status_code == 200, r.text
    joined = r.json()["joined"]
    assert set(joined) == {ALICE, BOB}
    assert set(joined[ALICE]) == {"display_name", "avatar_url"}


async def test_joined_rooms_lists_only_joined_rooms(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    mine = await create_room(api, alice)
    shared = await create_room(api, alice, preset="public_chat")
    left = await create_room(api, alice, preset="public_chat")
    for room_id in (shared, left):
        await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    await api.http.post(f"{V3}/rooms/{left}/leave", headers=bob, json={})
    r = await api.http.get(f"{V3}/joined_rooms", headers=bob)
    assert r.json() == {"joined_rooms": [shared]}
    r = await api.http.get(f"{V3}/joined_rooms", headers=alice)
    assert set(r.json()["joined_rooms"]) == {mine, shared, left}
