"""`GET /sync` through the real app: initial and incremental syncs, long-polls, limited
timelines, invites, leaves, redactions, errors."""

from __future__ import annotations

import trio

from tests.client.conftest import ClientApi
from tests.client.helpers import (
    V3,
    bodies,
    create_room,
    join,
    send,
    sync,
    timeline,
    uid,
)


async def test_initial_sync_shows_created_room_with_state_and_timeline(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, name="ops")
    await send(api, alice, room_id, "hello")
    body = await sync(api, alice)
    assert body["next_batch"].startswith("s")
    room = body["rooms"]["join"][room_id]
    events = room["timeline"]["events"]
    assert bodies(events) == ["hello"]
    types = [e["type"] for e in events] + [e["type"] for e in room["state"]["events"]]
    for needed in ("m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"):
        assert needed in types
    timeline_ids = {e["event_id"] for e in events}
    assert not timeline_ids & {e["event_id"] for e in room["state"]["events"]}
    assert all("room_id" not in e for e in events)
    assert room["summary"]["m.joined_member_count"] == 1
    assert room["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
    for key in ("to_device", "device_lists", "device_one_time_keys_count", "presence"):
        assert key in body
    assert body["device_unused_fallback_key_types"] == []


async def test_own_event_carries_transaction_id_for_sending_device_only(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    await send(api, alice, room_id, "mine", txn="txn-42")
    [event] = [
        e for e in timeline(await sync(api, alice), room_id) if e["type"] == "m.room.message"
    ]
    assert event["unsigned"]["transaction_id"] == "txn-42"
    other_device = await api.login("alice")
    [event] = [
        e for e in timeline(await sync(api, other_device), room_id) if e["type"] == "m.room.message"
    ]
    assert "transaction_id" not in event["unsigned"]


async def test_incremental_sync_shows_only_new_events(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    await send(api, alice, room_id, "old")
    first = await sync(api, alice)
    await send(api, alice, room_id, "new")
    second = await sync(api, alice, first["next_batch"])
    room = second["rooms"]["join"][room_id]
    assert bodies(room["timeline"]["events"]) == ["new"]
    assert room["timeline"]["limited"] is False
    assert room["state"]["events"] == []
    third = await sync(api, alice, second["next_batch"])
    assert third["rooms"]["join"] == {}


async def test_long_poll_wakes_when_another_user_sends(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, bob))["next_batch"]
    got: list[dict] = []

    async def poll() -> None:
        token = since
        for _ in range(5):  # tolerate early answers that carry something else
            body = await sync(api, bob, token, timeout=10000)
            token = body["next_batch"]
            if room_id in body["rooms"]["join"]:
                got.extend(timeline(body, room_id))
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(0)
        await send(api, alice, room_id, "wake up")
    assert bodies(got) == ["wake up"]


async def test_empty_long_poll_returns_at_timeout_with_same_rooms(
    api: ClientApi, autojump_clock: trio.abc.Clock
) -> None:
    alice = await api.login("alice")
    await create_room(api, alice)
    since = (await sync(api, alice))["next_batch"]
    body = await sync(api, alice, since, timeout=30000)
    assert body["rooms"]["join"] == {}
    assert body["next_batch"] == since


async def test_limited_timeline_has_prev_batch_before_first_event(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    first = await sync(api, alice)
    for n in range(6):
        await send(api, alice, room_id, f"m{n}")
    body = await sync(api, alice, first["next_batch"], filter={"room": {"timeline": {"limit": 3}}})
    room = body["rooms"]["join"][room_id]
    assert bodies(room["timeline"]["events"]) == ["m3", "m4", "m5"]
    assert room["timeline"]["limited"] is True
    prev = room["timeline"]["prev_batch"]
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages",
        headers=alice,
        params={"from": prev, "dir": "b", "limit": 1},
    )
    assert r.status_code == 200, r.text
    assert bodies(r.json()["chunk"]) == ["m2"]


async def test_invite_appears_with_invite_state_then_moves_to_join(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    since = (await sync(api, bob))["next_batch"]
    room_id = await create_room(api, alice, name="secret", invite=[uid("bob")])
    body = await sync(api, bob, since)
    invite = body["rooms"]["invite"][room_id]["invite_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in invite}
    assert by_type[("m.room.name", "")]["content"]["name"] == "secret"
    assert ("m.room.create", "") in by_type
    assert by_type[("m.room.member", uid("bob"))]["content"]["membership"] == "invite"
    assert by_type[("m.room.member", uid("bob"))]["sender"] == uid("alice")
    await join(api, bob, room_id)
    body = await sync(api, bob, body["next_batch"])
    assert room_id not in body["rooms"]["invite"]
    room = body["rooms"]["join"][room_id]
    all_events = room["state"]["events"] + room["timeline"]["events"]
    assert any(e["type"] == "m.room.name" for e in all_events)
    assert any(
        e["type"] == "m.room.member"
        and e["state_key"] == uid("bob")
        and e["content"]["membership"] == "join"
        for e in all_events
    )


async def test_leave_appears_in_rooms_leave_and_not_after_forget(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, bob))["next_batch"]
    await send(api, alice, room_id, "before you go")
    assert (await api.http.post(f"{V3}/rooms/{room_id}/leave", headers=bob, json={})).is_success
    await send(api, alice, room_id, "after you left")
    body = await sync(api, bob, since)
    assert room_id not in body["rooms"]["join"]
    events = timeline(body, room_id, "leave")
    assert bodies(events) == ["before you go"]
    assert events[-1]["type"] == "m.room.member"
    assert events[-1]["content"]["membership"] == "leave"
    again = await sync(api, bob, body["next_batch"])
    assert room_id not in again["rooms"]["leave"]
    include_leave = {"room": {"include_leave": True}}
    assert room_id in (await sync(api, bob, filter=include_leave))["rooms"]["leave"]
    assert (await api.http.post(f"{V3}/rooms/{room_id}/forget", headers=bob, json={})).is_success
    assert room_id not in (await sync(api, bob, filter=include_leave))["rooms"]["leave"]


async def test_kicked_user_sees_room_in_leave(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    since = (await sync(api, bob))["next_batch"]
    r = await api.http.post(
        f"{V3}/rooms/{room_id}/kick", headers=alice, json={"user_id": uid("bob")}
    )
    assert r.status_code == 200, r.text
    events = timeline(await sync(api, bob, since), room_id, "leave")
    assert events[-1]["sender"] == uid("alice")
    assert events[-1]["content"]["membership"] == "leave"


async def test_redacted_event_is_served_redacted(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    event_id = await send(api, alice, room_id, "oops")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/redact/{event_id}/r1", headers=alice, json={"reason": "typo"}
    )
    assert r.status_code == 200, r.text
    events = timeline(await sync(api, alice), room_id)
    [redacted] = [e for e in events if e["event_id"] == event_id]
    assert redacted["content"] == {}
    because = redacted["unsigned"]["redacted_because"]
    assert because["type"] == "m.room.redaction"
    assert because["content"]["reason"] == "typo"


async def test_full_state_returns_state_for_unchanged_rooms(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, name="ops")
    since = (await sync(api, alice))["next_batch"]
    body = await sync(api, alice, since, full_state="true")
    state_types = {e["type"] for e in body["rooms"]["join"][room_id]["state"]["events"]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= state_types


async def test_state_change_shows_prev_content(api: ClientApi) -> None:
    alice = await api.login("alice")
    room_id = await create_room(api, alice, name="one")
    since = (await sync(api, alice))["next_batch"]
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/state/m.room.name", headers=alice, json={"name": "two"}
    )
    assert r.status_code == 200
    [event] = timeline(await sync(api, alice, since), room_id)
    assert event["content"]["name"] == "two"
    assert event["unsigned"]["prev_content"] == {"name": "one"}
    # /messages renders the same event the same way (one decoration, one renderer).
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=alice, params={"dir": "b", "limit": 1}
    )
    [paged] = r.json()["chunk"]
    assert paged["event_id"] == event["event_id"]
    assert {k: v for k, v in paged.items() if k != "room_id"} | {"unsigned": {}} == {
        **event,
        "unsigned": {},
    }
    assert paged["unsigned"].keys() == event["unsigned"].keys()
    assert paged["unsigned"]["replaces_state"] == event["unsigned"]["replaces_state"]


async def test_history_visibility_joined_hides_events_before_join(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    room_id = await create_room(
        api,
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    await send(api, alice, room_id, "private past")
    await join(api, bob, room_id)
    await send(api, alice, room_id, "welcome")
    assert bodies(timeline(await sync(api, bob), room_id)) == ["welcome"]


async def test_bad_since_token_is_invalid_param(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"since": "garbage"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"timeout": "soon"})
    assert (r.status_code, r.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_sync_needs_access_token(api: ClientApi) -> None:
    r = await api.http.get(f"{V3}/sync")
    assert (r.status_code, r.json()["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_summary_heroes_and_counts(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    await api.login("carol")
    room_id = await create_room(api, alice, preset="public_chat", invite=[uid("carol")])
    await join(api, bob, room_id)
    summary = (await sync(api, alice))["rooms"]["join"][room_id]["summary"]
    assert summary["m.joined_member_count"] == 2
    assert summary["m.invited_member_count"] == 1
    assert summary["m.heroes"] == [uid("bob"), uid("carol")]
