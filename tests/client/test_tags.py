"""Room tags (`/user/{userId}/rooms/{roomId}/tags`): the API, /sync and account data."""

from __future__ import annotations

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, sync, uid


def tags_path(user: str, room_id: str, tag: str | None = None) -> str:
    path = f"{V3}/user/{uid(user)}/rooms/{room_id}/tags"
    return path if tag is None else f"{path}/{tag}"


async def test_favourite_and_low_priority_round_trip_and_sync(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    r = await api.http.get(tags_path("alice", room_id), headers=alice)
    assert (r.status_code, r.json()) == (200, {"tags": {}})
    since = (await sync(api, alice))["next_batch"]
    r = await api.http.put(
        tags_path("alice", room_id, "m.favourite"), headers=alice, json={"order": 0.5}
    )
    assert (r.status_code, r.json()) == (200, {})
    r = await api.http.put(tags_path("alice", room_id, "m.lowpriority"), headers=alice, json={})
    assert r.status_code == 200
    r = await api.http.get(tags_path("alice", room_id), headers=alice)
    assert r.json() == {"tags": {"m.favourite": {"order": 0.5}, "m.lowpriority": {}}}
    body = await sync(api, alice, since)
    assert body["rooms"]["join"][room_id]["account_data"]["events"] == [
        {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}, "m.lowpriority": {}}}}
    ]
    # An initial sync carries them too, and the account data API reads the same blob.
    initial = await sync(api, alice)
    events = initial["rooms"]["join"][room_id]["account_data"]["events"]
    assert {"type": "m.tag", "content": r.json()} in events
    data = f"{V3}/user/{uid('alice')}/rooms/{room_id}/account_data/m.tag"
    assert (await api.http.get(data, headers=alice)).json() == r.json()

    since = body["next_batch"]
    r = await api.http.delete(tags_path("alice", room_id, "m.lowpriority"), headers=alice)
    assert (r.status_code, r.json()) == (200, {})
    body = await sync(api, alice, since)
    assert body["rooms"]["join"][room_id]["account_data"]["events"] == [
        {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}}
    ]
    # Deleting a tag the room doesn't have is not an error, and changes nothing.
    r = await api.http.delete(tags_path("alice", room_id, "u.nothing"), headers=alice)
    assert r.status_code == 200
    assert room_id not in (await sync(api, alice, body["next_batch"]))["rooms"]["join"]


async def test_tag_errors(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice)
    # Someone else's tags.
    for r in (
        await api.http.get(tags_path("alice", room_id), headers=bob),
        await api.http.put(tags_path("alice", room_id, "m.favourite"), headers=bob, json={}),
        await api.http.delete(tags_path("alice", room_id, "m.favourite"), headers=bob),
    ):
        assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    # A room bob has no membership in.
    r = await api.http.put(tags_path("bob", room_id, "m.favourite"), headers=bob, json={})
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    # Too long, bad order, not an object, not a room id.
    r = await api.http.put(tags_path("alice", room_id, "x" * 256), headers=alice, json={})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    r = await api.http.put(
        tags_path("alice", room_id, "u.x"), headers=alice, json={"order": "first"}
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    r = await api.http.put(tags_path("alice", room_id, "u.x"), headers=alice, json=[1])
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")
    r = await api.http.get(tags_path("alice", "notaroom"), headers=alice)
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    # Nothing was stored by the refused requests.
    assert (await api.http.get(tags_path("alice", room_id), headers=alice)).json() == {"tags": {}}
