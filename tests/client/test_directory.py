"""The room directory (aliases, published rooms) and the user directory through the
real app."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import create_room

V3 = "/_matrix/client/v3"
ALICE = f"@alice:{SERVER_NAME}"
BOB = f"@bob:{SERVER_NAME}"


def _alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{quote(alias)}"


async def test_alias_create_resolve_delete(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    alias = f"#ops:{SERVER_NAME}"
    r = await api.http.put(_alias_path(alias), headers=alice, json={"room_id": room_id})
    assert r.status_code == 200, r.text
    r = await api.http.get(_alias_path(alias))
    assert r.status_code == 200, r.text
    assert r.json() == {"room_id": room_id, "servers": [SERVER_NAME]}
    r = await api.http.get(f"{V3}/rooms/{room_id}/aliases", headers=alice)
    assert r.json() == {"aliases": [alias]}
    r = await api.http.delete(_alias_path(alias), headers=alice)
    assert r.status_code == 200, r.text
    r = await api.http.get(_alias_path(alias))
    assert r.status_code == 404
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_existing_alias_is_a_409_conflict(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, room_alias_name="taken")
    r = await api.http.put(
        _alias_path(f"#taken:{SERVER_NAME}"), headers=alice, json={"room_id": room_id}
    )
    assert r.status_code == 409
    assert r.json()["errcode"] == "M_UNKNOWN"


async def test_remote_or_malformed_alias_is_an_invalid_param(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    for alias in ("#ops:elsewhere.test", "ops"):
        r = await api.http.put(_alias_path(alias), headers=alice, json={"room_id": room_id})
        assert r.status_code == 400, alias
        assert r.json()["errcode"] == "M_INVALID_PARAM"


async def test_alias_needs_membership_and_a_known_room(api: ClientApi) -> None:
    alice = await api.login("alice")
    eve = await api.login("eve")
    room_id = await create_room(api, alice)
    r = await api.http.put(
        _alias_path(f"#eve:{SERVER_NAME}"), headers=eve, json={"room_id": room_id}
    )
    assert r.json()["errcode"] == "M_FORBIDDEN"
    r = await api.http.put(
        _alias_path(f"#void:{SERVER_NAME}"),
        headers=alice,
        json={"room_id": f"!void:{SERVER_NAME}"},
    )
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_alias_deletion_by_creator_or_room_admin_only(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    bobs = f"#bobs:{SERVER_NAME}"
    alices = f"#alices:{SERVER_NAME}"
    for alias, who in ((bobs, bob), (alices, alice)):
        r = await api.http.put(_alias_path(alias), headers=who, json={"room_id": room_id})
        assert r.status_code == 200, r.text
    r = await api.http.delete(_alias_path(alices), headers=bob)
    assert r.status_code == 403
    assert r.json()["errcode"] == "M_FORBIDDEN"
    r = await api.http.delete(_alias_path(bobs), headers=alice)  # room admin
    assert r.status_code == 200, r.text
    r = await api.http.delete(_alias_path(alices), headers=alice)  # creator
    assert r.status_code == 200, r.text
    r = await api.http.delete(_alias_path(alices), headers=alice)
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_public_rooms_lists_only_published_rooms(api: ClientApi) -> None:
    alice = await api.login("alice")
    public = await create_room(
        api, alice, visibility="public", name="Lobby", topic="say hi", room_alias_name="lobby"
    )
    await create_room(api, alice, name="Secret")
    r = await api.http.get(f"{V3}/publicRooms")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["room_id"] for e in body["chunk"]] == [public]
    entry = body["chunk"][0]
    assert entry["name"] == "Lobby"
    assert entry["topic"] == "say hi"
    assert entry["canonical_alias"] == f"#lobby:{SERVER_NAME}"
    assert entry["num_joined_members"] == 1
    assert entry["join_rule"] == "public"
    assert entry["world_readable"] is False
    assert entry["guest_can_join"] is False
    assert body["total_room_count_estimate"] == 1
    assert "next_batch" not in body


async def test_public_rooms_search_and_pagination(api: ClientApi) -> None:
    alice = await api.login("alice")
    rooms = [await create_room(api, alice, visibility="public", name=f"Room {i}") for i in range(3)]
    await create_room(api, alice, visibility="public", name="Other", topic="about cheese")
    r = await api.http.post(
        f"{V3}/publicRooms", headers=alice, json={"filter": {"generic_search_term": "CHEESE"}}
    )
    assert [e["name"] for e in r.json()["chunk"]] == ["Other"]
    seen: list[str] = []
    body: dict[str, Any] = {"limit": 2, "filter": {"generic_search_term": "room"}}
    for _ in range(3):
        r = await api.http.post(f"{V3}/publicRooms", headers=alice, json=body)
        page = r.json()
        seen.extend(e["room_id"] for e in page["chunk"])
        if "next_batch" not in page:
            break
        body["since"] = page["next_batch"]
    assert sorted(seen) == sorted(rooms)
    assert page["prev_batch"] == "p0"
    r = await api.http.get(f"{V3}/publicRooms", params={"limit": 1})
    assert len(r.json()["chunk"]) == 1
    assert r.json()["next_batch"] == "p1"


async def test_room_directory_visibility(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    path = f"{V3}/directory/list/room/{room_id}"
    assert (await api.http.get(path)).json() == {"visibility": "private"}
    await api.http.post(f"{V3}/rooms/{room_id}/join", headers=bob, json={})
    r = await api.http.put(path, headers=bob, json={"visibility": "public"})
    assert r.json()["errcode"] == "M_FORBIDDEN"
    r = await api.http.put(path, headers=alice, json={"visibility": "public"})
    assert r.status_code == 200, r.text
    assert (await api.http.get(path)).json() == {"visibility": "public"}
    r = await api.http.get(f"{V3}/publicRooms")
    assert [e["room_id"] for e in r.json()["chunk"]] == [room_id]
    r = await api.http.get(f"{V3}/directory/list/room/!nope:{SERVER_NAME}")
    assert r.json()["errcode"] == "M_NOT_FOUND"


async def test_user_directory_finds_users_sharing_a_room_or_in_public_rooms(
    api: ClientApi,
) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    await api.login("dave")
    await api.http.put(
        f"{V3}/profile/{BOB}/displayname", headers=bob, json={"displayname": "Bobby Tables"}
    )
    private = await create_room(api, alice, invite=[BOB])
    await api.http.post(f"{V3}/rooms/{private}/join", headers=bob, json={})
    public = await create_room(api, carol, preset="public_chat")
    assert public

    async def search(term: str, limit: int = 10) -> dict[str, Any]:
        r = await api.http.post(
            f"{V3}/user_directory/search",
            headers=alice,
            json={"search_term": term, "limit": limit},
        )
        assert r.status_code == 200, r.text
        return r.json()

    found = await search("bob")
    assert [u["user_id"] for u in found["results"]] == [BOB]
    assert found["limited"] is False
    by_name = await search("tables")
    assert [u["user_id"] for u in by_name["results"]] == [BOB]
    assert [u["user_id"] for u in (await search("carol"))["results"]] == [f"@carol:{SERVER_NAME}"]
    assert (await search("dave"))["results"] == []  # shares no room, in no public room
    everyone = await search(SERVER_NAME, limit=1)
    assert len(everyone["results"]) == 1
    assert everyone["limited"] is True
    r = await api.http.post(f"{V3}/user_directory/search", headers=alice, json={})
    assert r.json()["errcode"] == "M_MISSING_PARAM"


async def test_user_directory_follows_join_rule_and_history_visibility_changes(
    api: ClientApi,
) -> None:
    alice = await api.login("alice")
    dave = await api.login("dave")
    room = await create_room(api, dave, preset="private_chat")

    async def finds_dave() -> bool:
        r = await api.http.post(
            f"{V3}/user_directory/search", headers=alice, json={"search_term": "dave"}
        )
        assert r.status_code == 200, r.text
        return [u["user_id"] for u in r.json()["results"]] == [f"@dave:{SERVER_NAME}"]

    async def put_state(type_: str, content: dict[str, Any]) -> None:
        r = await api.http.put(f"{V3}/rooms/{room}/state/{type_}/", headers=dave, json=content)
        assert r.status_code == 200, r.text

    assert not await finds_dave()  # alone in a private room
    await put_state("m.room.join_rules", {"join_rule": "public"})
    assert await finds_dave()
    await put_state("m.room.join_rules", {"join_rule": "invite"})
    assert not await finds_dave()
    await put_state("m.room.history_visibility", {"history_visibility": "world_readable"})
    assert await finds_dave()
    await put_state("m.room.history_visibility", {"history_visibility": "shared"})
    assert not await finds_dave()
