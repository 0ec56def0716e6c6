"""`m.ignored_user_list`: events, invites and typing of ignored users are not in /sync,
full or incremental; their state events are (as Synapse)."""

from __future__ import annotations

from tests.client.conftest import ClientApi
from tests.client.helpers import V3, bodies, create_room, ephemeral, join, send, sync, timeline, uid


async def ignore(api: ClientApi, headers: dict[str, str], user: str, *others: str) -> None:
    r = await api.http.put(
        f"{V3}/user/{uid(user)}/account_data/m.ignored_user_list",
        headers=headers,
        json={"ignored_users": {uid(o): {} for o in others}},
    )
    assert r.status_code == 200, r.text


async def test_ignored_users_messages_invites_and_typing_are_hidden(api: ClientApi) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    room_id = await create_room(
        api,
        alice,
        preset="public_chat",
        power_level_content_override={"events": {"m.room.topic": 0}},
    )
    await join(api, bob, room_id)
    await join(api, carol, room_id)
    await ignore(api, alice, "alice", "bob")
    since = (await sync(api, alice))["next_batch"]

    await send(api, bob, room_id, "from bob")
    await send(api, carol, room_id, "from carol")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/state/m.room.topic", headers=bob, json={"topic": "bob's topic"}
    )
    assert r.status_code == 200, r.text
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('bob')}",
        headers=bob,
        json={"typing": True, "timeout": 30000},
    )
    assert r.status_code == 200
    other = await create_room(api, bob, invite=[uid("alice")])
    from_carol = await create_room(api, carol, invite=[uid("alice")])

    for body in (await sync(api, alice, since), await sync(api, alice)):
        events = timeline(body, room_id)
        assert bodies(events) == ["from carol"]
        assert any(e["type"] == "m.room.topic" and e["sender"] == uid("bob") for e in events)
        typing = ephemeral(body, room_id, "m.typing")
        assert typing is None or uid("bob") not in typing["user_ids"]
        assert other not in body["rooms"]["invite"]
        assert from_carol in body["rooms"]["invite"]

    # Bob, who ignores no one, sees everything; alice sees bob again once she stops ignoring.
    bob_view = await sync(api, bob)
    assert bodies(timeline(bob_view, room_id)) == ["from bob", "from carol"]
    await ignore(api, alice, "alice")
    assert bodies(timeline(await sync(api, alice), room_id)) == ["from bob", "from carol"]


async def test_sliding_sync_hides_ignored_users_too(api: ClientApi) -> None:
    """Element X reads rooms through sliding sync: the same rule applies there (Synapse's
    sliding sync filters timelines, invites and typing by the ignored list too)."""
    from tests.client.test_sliding_sync import SS

    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    await join(api, carol, room_id)
    await ignore(api, alice, "alice", "bob")
    body = {
        "lists": {"all": {"ranges": [[0, 9]], "required_state": [], "timeline_limit": 10}},
        "extensions": {"typing": {"enabled": True, "lists": ["*"]}},
    }
    r = await api.http.post(SS, headers=alice, params={"timeout": 0}, json=body)
    first = r.json()

    await send(api, bob, room_id, "from bob")
    await send(api, carol, room_id, "from carol")
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/typing/{uid('bob')}",
        headers=bob,
        json={"typing": True, "timeout": 30000},
    )
    assert r.status_code == 200
    other = await create_room(api, bob, invite=[uid("alice")])
    from_carol = await create_room(api, carol, invite=[uid("alice")])

    fresh = await api.http.post(SS, headers=alice, params={"timeout": 0}, json=body)
    later = await api.http.post(
        SS, headers=alice, params={"timeout": 0, "pos": first["pos"]}, json=body
    )
    for answer in (fresh.json(), later.json()):
        rooms = answer["rooms"]
        events = rooms[room_id]["timeline"]
        assert bodies(events) == ["from carol"]
        assert other not in rooms and other not in answer["lists"]["all"]["ops"][0]["room_ids"]
        assert from_carol in rooms
        typing = answer["extensions"]["typing"].get("rooms", {}).get(room_id)
        assert typing is None or uid("bob") not in typing["content"]["user_ids"]
