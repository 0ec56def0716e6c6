"""Which `m.room.redaction` events clients get: only those that apply (relay/events/auth.py
`redaction_allowed`, asked through `RoomService.held_redaction_txn`), on every timeline:
/sync (initial and incremental), /messages, /context, /event. A redaction whose target is
not stored yet is held; when the target arrives, the client gets the target already
redacted (`unsigned.redacted_because`), and later reads carry the redaction too
(Synapse's behaviour: it withholds a redaction on every read until it can apply).

Spec: https://spec.matrix.org/v1.16/rooms/v11/#handling-redactions
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from relay.rooms.service import RoomConfig
from store import events as store_events
from tests.client.conftest import ClientApi
from tests.client.helpers import V3, sync, timeline
from tests.rooms.remote_rooms import (
    ALICE,
    CAROL,
    DAVE,
    ERIN,
    HANDLED_REDACTIONS,
    VERSIONS,
    accept,
    build,
    local_message,
    redaction,
    set_power,
    shared_room,
)

FILTER = {"room": {"timeline": {"limit": 50}}}


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


async def _synced_ids(
    api: ClientApi, headers: dict[str, str], room_id: str, since: str | None = None
) -> list[str]:
    body = await sync(api, headers, since, filter=FILTER)
    room = body["rooms"]["join"].get(room_id)
    return _ids(room["timeline"]["events"]) if room else []


async def _messages_ids(api: ClientApi, headers: dict[str, str], room_id: str) -> list[str]:
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=headers, params={"dir": "b", "limit": 50}
    )
    assert r.status_code == 200, r.text
    return _ids(r.json()["chunk"])


async def _context_ids(
    api: ClientApi, headers: dict[str, str], room_id: str, event_id: str
) -> list[str]:
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/context/{quote(event_id, safe='')}",
        headers=headers,
        params={"limit": 50},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return [*_ids(body["events_before"]), body["event"]["event_id"], *_ids(body["events_after"])]


async def _event_status(
    api: ClientApi, headers: dict[str, str], room_id: str, event_id: str
) -> tuple[int, str | None]:
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/event/{quote(event_id, safe='')}", headers=headers
    )
    return r.status_code, r.json().get("errcode")


async def _everywhere(
    api: ClientApi, headers: dict[str, str], room_id: str, around: str, since: str
) -> dict[str, list[str]]:
    """The event ids each timeline shows."""
    return {
        "initial sync": await _synced_ids(api, headers, room_id),
        "incremental sync": await _synced_ids(api, headers, room_id, since),
        "messages": await _messages_ids(api, headers, room_id),
        "context": await _context_ids(api, headers, room_id, around),
    }


@HANDLED_REDACTIONS
async def test_redaction_that_does_not_apply_never_reaches_clients(
    api: ClientApi, version: str
) -> None:
    room_id = await shared_room(api, version)
    alice = await api.login("alice")
    since = (await sync(api, alice, filter=FILTER))["next_batch"]
    alice_msg = await local_message(api, room_id, "alice's")
    # Carol (power 0, another server) redacts Alice's event: accepted, inert, and unseen.
    forged = await redaction(api, room_id, CAROL, alice_msg)
    assert await accept(api, forged) == "accepted"
    # The twin: her redaction of her own server's event applies, and is seen.
    dave_msg = await build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await accept(api, dave_msg) == "accepted"
    own_server = await redaction(api, room_id, CAROL, dave_msg.event_id)
    assert await accept(api, own_server) == "accepted"
    for where, ids in (await _everywhere(api, alice, room_id, alice_msg, since)).items():
        assert forged.event_id not in ids, where
        assert {alice_msg, dave_msg.event_id, own_server.event_id} <= set(ids), where
    assert await _event_status(api, alice, room_id, forged.event_id) == (404, "M_NOT_FOUND")
    assert (await _event_status(api, alice, room_id, own_server.event_id))[0] == 200
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/context/{quote(forged.event_id, safe='')}", headers=alice
    )
    assert r.status_code == 404, r.text


@VERSIONS
async def test_redactions_of_another_rooms_event_or_of_the_create_event_never_reach_clients(
    api: ClientApi, version: str
) -> None:
    room_id = await shared_room(api, version)
    private = await api.services.rooms.create_room(
        RoomConfig(creator=ALICE, room_version=version, preset="private_chat")
    )
    secret = await local_message(api, private, "secret")
    alice = await api.login("alice")
    since = (await sync(api, alice, filter=FILTER))["next_batch"]
    # Carol moderates the room: power is not what stops these.
    await set_power(api, room_id, CAROL, 100)
    rooms = api.services.rooms
    create = await api.services.database.read(
        lambda conn: rooms.state_event_txn(conn, room_id, "m.room.create", "")
    )
    across = await redaction(api, room_id, CAROL, secret)
    of_create = await redaction(api, room_id, CAROL, create.event_id)
    for pdu in (across, of_create):
        assert await accept(api, pdu) == "accepted"
    # The twin: the moderator's redaction of Alice's event in this room applies.
    alice_msg = await local_message(api, room_id, "moderated")
    moderated = await redaction(api, room_id, CAROL, alice_msg)
    assert await accept(api, moderated) == "accepted"
    for where, ids in (await _everywhere(api, alice, room_id, alice_msg, since)).items():
        assert across.event_id not in ids and of_create.event_id not in ids, where
        assert moderated.event_id in ids, where
    for pdu in (across, of_create):
        assert await _event_status(api, alice, room_id, pdu.event_id) == (404, "M_NOT_FOUND")


@HANDLED_REDACTIONS
async def test_redaction_is_held_until_its_target_arrives_which_then_comes_redacted(
    api: ClientApi, version: str
) -> None:
    room_id = await shared_room(api, version)
    alice = await api.login("alice")
    since = (await sync(api, alice, filter=FILTER))["next_batch"]
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    # Dave's message, and Carol's redaction of it (same server) built beside it.
    dave_msg = await build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "late"}
    )
    held = await redaction(api, room_id, CAROL, dave_msg.event_id, prev_events=tips)
    assert await accept(api, held) == "accepted"
    # Alice (power 100) redacts an event this server never saw: 200, and held too.
    r = await api.http.put(
        f"{V3}/rooms/{room_id}/redact/$never-seen/t1", headers=alice, json={"reason": "r"}
    )
    assert r.status_code == 200, r.text
    local_held = r.json()["event_id"]
    body = await sync(api, alice, since, filter=FILTER)
    room = body["rooms"]["join"].get(room_id)  # nothing else new: the room is left out
    synced = _ids(room["timeline"]["events"]) if room else []
    assert held.event_id not in synced and local_held not in synced
    assert held.event_id not in await _messages_ids(api, alice, room_id)
    assert await _event_status(api, alice, room_id, held.event_id) == (404, "M_NOT_FOUND")
    # The target arrives: the next incremental sync brings it already redacted.
    assert await accept(api, dave_msg) == "accepted"
    later = await sync(api, alice, body["next_batch"], filter=FILTER)
    [arrived] = [e for e in timeline(later, room_id) if e["event_id"] == dave_msg.event_id]
    assert arrived["content"] == {}
    assert arrived["unsigned"]["redacted_because"]["event_id"] == held.event_id
    # Every read from now on carries the redaction, as one that applies.
    for where, ids in (await _everywhere(api, alice, room_id, dave_msg.event_id, since)).items():
        assert held.event_id in ids, where
        assert local_held not in ids, where
    assert (await _event_status(api, alice, room_id, held.event_id))[0] == 200
    # The twin: held, then still withheld, when the late target is another server's event.
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    erin_msg = await build(
        api, room_id, sender=ERIN, type_="m.room.message", content={"body": "erin's"}
    )
    forged = await redaction(api, room_id, CAROL, erin_msg.event_id, prev_events=tips)
    assert await accept(api, forged) == "accepted"
    assert await accept(api, erin_msg) == "accepted"
    last = await sync(api, alice, later["next_batch"], filter=FILTER)
    [intact] = [e for e in timeline(last, room_id) if e["event_id"] == erin_msg.event_id]
    assert intact["content"] == {"body": "erin's"}
    assert "redacted_because" not in intact["unsigned"]
    for where, ids in (await _everywhere(api, alice, room_id, erin_msg.event_id, since)).items():
        assert forged.event_id not in ids, where
