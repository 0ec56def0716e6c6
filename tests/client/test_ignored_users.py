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
