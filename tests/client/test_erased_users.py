"""Events of erased users (`POST /account/deactivate` with `erase: true`): a reader who
was not joined when such an event was sent gets it pruned (the room version's redaction
algorithm), one who was there reads it whole (spec `erase`; Synapse's
`_check_client_allowed_to_see_event`). Every read path goes through the one rule
(relay/rooms/visibility.py): /messages, /context, /event, /sync (initial and
incremental), /relations and /threads. Each check has its twin: Alice, in the room when
Bob wrote, still reads his words."""

from __future__ import annotations

from typing import Any

from relay.operator import actions as operator
from tests.client.conftest import ClientApi
from tests.client.helpers import V3, create_room, join, send, sync, timeline, uid

V1 = "/_matrix/client/v1"
BIG = {"room": {"timeline": {"limit": 50}}}


async def _erase(api: ClientApi, localpart: str, *, erase: bool = True) -> None:
    services = api.services
    await operator.deactivate_user(services.accounts, services.rooms, uid(localpart), erase=erase)


async def _room(api: ClientApi, *, erase: bool = True) -> tuple[dict[str, Any], str, str, str]:
    """Alice's public room (history `shared`); Bob writes a message and a thread reply to
    Alice's root, is erased (or only deactivated), and Carol joins afterwards. Returns
    (headers by user, room id, Bob's message id, Alice's thread root id)."""
    alice = await api.login("alice")
    bob = await api.login("bob")
    carol = await api.login("carol")
    room_id = await create_room(api, alice, preset="public_chat")
    await join(api, bob, room_id)
    root = await send(api, alice, room_id, "root")
    message = await send(api, bob, room_id, "bob's secret")
    await send(
        api,
        bob,
        room_id,
        "bob's reply",
        **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}},
    )
    await _erase(api, "bob", erase=erase)
    await join(api, carol, room_id)
    return {"alice": alice, "carol": carol}, room_id, message, root


def _by_id(events: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    [event] = [e for e in events if e["event_id"] == event_id]
    return event


def _pruned(event: dict[str, Any]) -> bool:
    return event["type"] == "m.room.message" and event["content"] == {}


def _whole(event: dict[str, Any]) -> bool:
    return event["content"].get("body", "").startswith("bob's")


async def test_messages_context_and_event_serve_an_erased_users_events_pruned_to_newcomers(
    api: ClientApi,
) -> None:
    users, room_id, message, _root = await _room(api)
    for who, check in (("carol", _pruned), ("alice", _whole)):
        headers = users[who]
        r = await api.http.get(
            f"{V3}/rooms/{room_id}/messages", headers=headers, params={"dir": "b", "limit": 50}
        )
        assert r.status_code == 200, r.text
        assert check(_by_id(r.json()["chunk"], message)), who
        r = await api.http.get(f"{V3}/rooms/{room_id}/event/{message}", headers=headers)
        assert r.status_code == 200, r.text
        assert check(r.json()), who
        r = await api.http.get(
            f"{V3}/rooms/{room_id}/context/{message}", headers=headers, params={"limit": 0}
        )
        assert r.status_code == 200, r.text
        assert check(r.json()["event"]), who
        # The pruned form is the same event: id, sender and type kept.
        assert r.json()["event"]["sender"] == uid("bob")


async def test_sync_serves_an_erased_users_events_pruned_to_newcomers(api: ClientApi) -> None:
    users, room_id, message, _root = await _room(api)
    for who, check in (("carol", _pruned), ("alice", _whole)):
        body = await sync(api, users[who], filter=BIG)
        assert check(_by_id(timeline(body, room_id), message)), who
    # Incremental: a gappy sync after new events brings it again, as each reader may see it.
    since = {who: (await sync(api, h, filter=BIG))["next_batch"] for who, h in users.items()}
    await send(api, users["alice"], room_id, "later")
    for who, check in (("carol", _pruned), ("alice", _whole)):
        body = await sync(api, users[who], since[who], filter=BIG)
        assert [e["content"].get("body") for e in timeline(body, room_id)] == ["later"]
        body = await sync(api, users[who], filter=BIG, full_state="true")
        assert check(_by_id(timeline(body, room_id), message)), who


async def test_relations_and_threads_serve_an_erased_users_replies_pruned_to_newcomers(
    api: ClientApi,
) -> None:
    users, room_id, _message, root = await _room(api)
    for who, check in (("carol", _pruned), ("alice", _whole)):
        headers = users[who]
        r = await api.http.get(f"{V1}/rooms/{room_id}/relations/{root}", headers=headers)
        assert r.status_code == 200, r.text
        [reply] = r.json()["chunk"]
        assert check(reply), who
        r = await api.http.get(f"{V1}/rooms/{room_id}/threads", headers=headers)
        assert r.status_code == 200, r.text
        [thread] = r.json()["chunk"]
        latest = thread["unsigned"]["m.relations"]["m.thread"]["latest_event"]
        assert check(latest), who


async def test_a_deactivated_user_who_was_not_erased_is_read_whole_by_newcomers(
    api: ClientApi,
) -> None:
    users, room_id, message, root = await _room(api, erase=False)
    headers = users["carol"]
    r = await api.http.get(f"{V3}/rooms/{room_id}/event/{message}", headers=headers)
    assert _whole(r.json())
    body = await sync(api, headers, filter=BIG)
    assert _whole(_by_id(timeline(body, room_id), message))
    r = await api.http.get(f"{V1}/rooms/{room_id}/relations/{root}", headers=headers)
    assert _whole(r.json()["chunk"][0])
