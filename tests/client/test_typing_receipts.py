"""Typing notifications and read receipts, as other users see them in /sync."""

from __future__ import annotations

import trio

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, ephemeral, join, send, sync, uid


async def _pair(api: ClientApi) -> tuple[dict[str, str], dict[str, str], str]:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    return alice, bob, room_id


async def test_typing_appears_for_other_user_and_stops(api: ClientApi) -> None:
    alice, bob, room_id = await _pair(api)
    since = (await sync(api, bob))["next_batch"]
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('alice')}",
        headers=alice,
        json={"typing": True, "timeout": 30000},
    )
    assert r.status_code == 200, r.text
    body = await sync(api, bob, since)
    assert ephemeral(body, room_id, "m.typing") == {"user_ids": [uid("alice")]}
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('alice')}", headers=alice, json={"typing": False}
    )
    body = await sync(api, bob, body["next_batch"])
    assert ephemeral(body, room_id, "m.typing") == {"user_ids": []}


async def test_typing_expires_after_timeout_and_wakes_long_poll(
    api: ClientApi, autojump_clock: trio.abc.Clock
) -> None:
    alice, bob, room_id = await _pair(api)
    await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('alice')}",
        headers=alice,
        json={"typing": True, "timeout": 5000},
    )
    body = await sync(api, bob)
    assert ephemeral(body, room_id, "m.typing") == {"user_ids": [uid("alice")]}
    body = await sync(api, bob, body["next_batch"], timeout=60000)
    assert ephemeral(body, room_id, "m.typing") == {"user_ids": []}


async def test_typing_only_for_yourself_and_only_when_joined(api: ClientApi) -> None:
    alice, _bob, room_id = await _pair(api)
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('bob')}", headers=alice, json={"typing": True}
    )
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    eve = await api.login("eve")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('eve')}", headers=eve, json={"typing": True}
    )
    assert (r.status_code, r.json()["errcode"]) == (403, "M_FORBIDDEN")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('alice')}", headers=alice, json={"typing": "yes"}
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_BAD_JSON")


async def test_read_receipt_appears_for_other_user(api: ClientApi) -> None:
    alice, bob, room_id = await _pair(api)
    event_id = await send(api, alice, room_id, "read me")
    since = (await sync(api, alice))["next_batch"]
    r = await api.http.post(f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}", headers=bob, json={})
    assert r.status_code == 200, r.text
    content = ephemeral(await sync(api, alice, since), room_id, "m.receipt")
    assert content is not None
    assert uid("bob") in content[event_id]["m.read"]
    assert isinstance(content[event_id]["m.read"][uid("bob")]["ts"], int)


async def test_private_read_receipt_is_invisible_to_others(api: ClientApi) -> None:
    alice, bob, room_id = await _pair(api)
    event_id = await send(api, alice, room_id, "read me quietly")
    alice_since = (await sync(api, alice))["next_batch"]
    bob_since = (await sync(api, bob))["next_batch"]
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/receipt/m.read.private/{event_id}", headers=bob, json={}
    )
    assert r.status_code == 200, r.text
    assert ephemeral(await sync(api, alice, alice_since), room_id, "m.receipt") is None
    assert ephemeral(await sync(api, alice), room_id, "m.receipt") is None
    own = ephemeral(await sync(api, bob, bob_since), room_id, "m.receipt")
    assert own is not None
    assert uid("bob") in own[event_id]["m.read.private"]


async def test_unread_count_drops_after_receipt(api: ClientApi) -> None:
    alice, bob, room_id = await _pair(api)
    await send(api, alice, room_id, "one")
    last = await send(api, alice, room_id, "two")
    body = await sync(api, bob)
    assert body["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 2
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/receipt/m.read/{last}", headers=bob, json={"thread_id": "main"}
    )
    assert r.status_code == 200, r.text
    body = await sync(api, bob, body["next_batch"])
    assert body["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 0


async def test_mention_counts_as_highlight(api: ClientApi) -> None:
    alice, bob, room_id = await _pair(api)
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/send/m.room.message/m1",
        headers=alice,
        json={"msgtype": "m.text", "body": "hey bob", "m.mentions": {"user_ids": [uid("bob")]}},
    )
    assert r.status_code == 200
    counts = (await sync(api, bob))["rooms"]["join"][room_id]["unread_notifications"]
    assert counts == {"notification_count": 1, "highlight_count": 1}


async def test_read_markers_set_fully_read_and_receipts(api: ClientApi) -> None:
    alice, bob, room_id = await _pair(api)
    event_id = await send(api, alice, room_id, "marker")
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/read_markers",
        headers=bob,
        json={"m.fully_read": event_id, "m.read": event_id},
    )
    assert r.status_code == 200, r.text
    room = (await sync(api, bob))["rooms"]["join"][room_id]
    assert {"type": "m.fully_read", "content": {"event_id": event_id}} in room["account_data"][
        "events"
    ]
    assert (
        uid("bob")
        in ephemeral({"rooms": {"join": {room_id: room}}}, room_id, "m.receipt")[event_id]["m.read"]
    )
    r = await api.http.get(
        f"{V3}/user/{uid('bob')}/rooms/{room_id}/account_data/m.fully_read", headers=bob
    )
    assert r.json() == {"event_id": event_id}


async def test_receipt_for_unknown_event_or_type_is_refused(api: ClientApi) -> None:
    alice, _bob, room_id = await _pair(api)
    r = await api.http.post(f"{V3}/rooms/{room_id}/receipt/m.read/$nope", headers=alice, json={})
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")
    event_id = await send(api, alice, room_id, "x")
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/receipt/m.unknown/{event_id}", headers=alice, json={}
    )
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    other_room = await create_room(api, alice)
    r = await api.http.post(
        f"{V3}/rooms/{other_room}/receipt/m.read/{event_id}", headers=alice, json={}
    )
    assert (r.status_code, r.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_receipt_without_a_body_is_accepted(api: ClientApi) -> None:
    alice, bob, room_id = await _pair(api)
    event_id = await send(api, alice, room_id, "x")
    r = await api.http.post(f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}", headers=bob)
    assert r.status_code == 200, r.text
