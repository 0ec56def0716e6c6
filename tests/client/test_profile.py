"""Profiles through the real app: read, set, clear, and the member events that follow."""

from __future__ import annotations

from typing import Any

from tests.client.conftest import SERVER_NAME, ClientApi

V3 = "/_matrix/client/v3"
ALICE = f"@alice:{SERVER_NAME}"


async def _member_content(api: ClientApi, room_id: str, user_id: str) -> dict[str, Any]:
    rooms = api.services.rooms
    pdu = await api.services.database.read(
        lambda conn: rooms.state_event_txn(conn, room_id, "m.room.member", user_id)
    )
    assert pdu is not None
    return dict(pdu.content)


async def _room(api: ClientApi, headers: dict[str, str]) -> str:
    r = await api.http.post(f"{V3}/createRoom", headers=headers, json={})
    assert r.status_code == 200, r.text
    return r.json()["room_id"]


async def test_profile_is_public_and_unknown_users_are_not_found(api: ClientApi) -> None:
    alice = await api.login("alice")
    await api.http.put(
        f"{V3}/profile/{ALICE}/displayname", headers=alice, json={"displayname": "A"}
    )
    r = await api.http.get(f"{V3}/profile/{ALICE}")
    assert (r.status_code, r.json()) == (200, {"displayname": "A"})
    r = await api.http.get(f"{V3}/profile/{ALICE}/avatar_url")
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    for path in (f"/profile/@nobody:{SERVER_NAME}", f"/profile/@nobody:{SERVER_NAME}/displayname"):
        r = await api.http.get(V3 + path)
        assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_set_profile_updates_member_event_in_every_joined_room(api: ClientApi) -> None:
    alice = await api.login("alice")
    rooms = [await _room(api, alice), await _room(api, alice)]
    r = await api.http.put(
        f"{V3}/profile/{ALICE}/displayname", headers=alice, json={"displayname": "Alice A."}
    )
    assert r.status_code == 200, r.text
    r = await api.http.put(
        f"{V3}/profile/{ALICE}/avatar_url", headers=alice, json={"avatar_url": "mxc://x/y"}
    )
    assert r.status_code == 200
    assert (await api.http.get(f"{V3}/profile/{ALICE}")).json() == {
        "displayname": "Alice A.",
        "avatar_url": "mxc://x/y",
    }
    expected = {"membership": "join", "displayname": "Alice A.", "avatar_url": "mxc://x/y"}
    for room_id in rooms:
        assert await _member_content(api, room_id, ALICE) == expected
        r = await api.http.get(f"{V3}/rooms/{room_id}/state/m.room.member/{ALICE}", headers=alice)
        assert (r.status_code, r.json()) == (200, expected)


async def test_clearing_a_profile_field_removes_it_from_member_events(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await _room(api, alice)
    path = f"{V3}/profile/{ALICE}/displayname"
    await api.http.put(path, headers=alice, json={"displayname": "Temp"})
    assert (await _member_content(api, room_id, ALICE))["displayname"] == "Temp"
    r = await api.http.delete(path, headers=alice)
    assert r.status_code == 200
    assert "displayname" not in await _member_content(api, room_id, ALICE)
    assert (await api.http.get(path)).status_code == 404


async def test_cannot_set_someone_elses_profile(api: ClientApi) -> None:
    await api.login("alice")
    bob = await api.login("bob")
    r = await api.http.put(
        f"{V3}/profile/{ALICE}/displayname", headers=bob, json={"displayname": "pwned"}
    )
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_unsupported_profile_field_and_bad_values(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.put(f"{V3}/profile/{ALICE}/m.tz", headers=alice, json={"m.tz": "UTC"})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await api.http.put(f"{V3}/profile/{ALICE}/displayname", headers=alice, json={})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")
    r = await api.http.put(
        f"{V3}/profile/{ALICE}/displayname", headers=alice, json={"displayname": 5}
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
