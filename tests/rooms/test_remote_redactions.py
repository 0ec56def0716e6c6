"""Redactions that other servers wrote (received, or backfilled): stored as events, and
applied only as *handling redactions* says (relay/events/auth.py `redaction_allowed`):
same room, accepted, the sender able to redact or on the target sender's server; a
redaction that arrives before its target waits for it."""

from __future__ import annotations

from typing import Any

import pytest

from relay.events.auth import auth_types_for_event
from relay.events.pdu import Pdu, finalize_event
from relay.identity import new_signing_key
from relay.remote_pdus import accept_pdu_txn
from relay.rooms import RoomConfig
from store import accounts as store_accounts
from store import events as store_events
from store import state as store_state
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.rooms.test_remote_pdus import REMOTE, REMOTE_KEY

ALICE = f"@alice:{SERVER_NAME}"
CAROL = f"@carol:{REMOTE}"
DAVE = f"@dave:{REMOTE}"
ELSEWHERE = "elsewhere.test"
ELSEWHERE_KEY = new_signing_key()
ERIN = f"@erin:{ELSEWHERE}"
VERSIONS = pytest.mark.parametrize("version", ["10", "11", "12"])


def _remote(
    api: ClientApi,
    conn: Any,
    room_id: str,
    *,
    sender: str,
    type_: str,
    content: dict[str, Any],
    state_key: str | None = None,
    redacts: str | None = None,
    prev_events: list[str] | None = None,
    auth_from: list[str] | None = None,
) -> Pdu:
    """An event its sender's server signs, on the given prevs (default: our tips), citing the auth
    events of the state after `auth_from` (default: its prevs)."""
    rv = api.services.rooms.room_version_txn(conn, room_id)
    prevs = prev_events or store_events.get_forward_extremities(conn, room_id)
    state = store_state.get_state_after(conn, (auth_from or prevs)[0]) or {}
    partial: dict[str, Any] = {
        "room_id": room_id,
        "sender": sender,
        "type": type_,
        "content": dict(content),
        "origin_server_ts": 1_700_000_000_000,
        "prev_events": prevs,
        "depth": max(store_events.get_depths(conn, prevs).values()) + 1,
    }
    if state_key is not None:
        partial["state_key"] = state_key
    if redacts is not None:
        if rv.updated_redaction_rules:
            partial["content"]["redacts"] = redacts
        else:
            partial["redacts"] = redacts
    partial["auth_events"] = sorted(
        {state[k] for k in auth_types_for_event(partial, rv) if k in state}
    )
    server = sender.partition(":")[2]
    key = ELSEWHERE_KEY if server == ELSEWHERE else REMOTE_KEY
    return finalize_event(partial, rv, server, key.key_id, key.key)


async def _build(api: ClientApi, room_id: str, **kw: Any) -> Pdu:
    return await api.services.database.read(lambda conn: _remote(api, conn, room_id, **kw))


async def _accept(api: ClientApi, pdu: Pdu, **kw: Any) -> str:
    rooms = api.services.rooms
    outcome = await api.services.database.write(lambda conn: accept_pdu_txn(rooms, conn, pdu, **kw))
    return outcome.status


async def _redaction(api: ClientApi, room_id: str, sender: str, target: str, **kw: Any) -> Pdu:
    return await _build(
        api, room_id, sender=sender, type_="m.room.redaction", content={}, redacts=target, **kw
    )


async def _redacted_by(api: ClientApi, event_id: str) -> str | None:
    rooms = api.services.rooms
    found = await api.services.database.read(lambda conn: rooms.redacted_by_txn(conn, event_id))
    return found.event_id if found is not None else None


async def _room(api: ClientApi, version: str, preset: str = "public_chat") -> str:
    """Alice's room (power 100) that Carol and Dave of REMOTE and Erin of ELSEWHERE (power
    0) joined."""
    if await api.services.database.read(store_accounts.get_user, ALICE) is None:
        await api.add_user("alice")
    room_id = await api.services.rooms.create_room(
        RoomConfig(creator=ALICE, room_version=version, preset=preset)
    )
    for user in (CAROL, DAVE, ERIN):
        join = await _build(
            api,
            room_id,
            sender=user,
            type_="m.room.member",
            content={"membership": "join"},
            state_key=user,
        )
        assert await _accept(api, join) == "accepted"
    return room_id


async def _local_message(api: ClientApi, room_id: str, body: str) -> str:
    return await api.services.rooms.send_event(
        ALICE, None, room_id, "m.room.message", {"msgtype": "m.text", "body": body}
    )


async def _set_power(api: ClientApi, room_id: str, user: str, level: int) -> None:
    rooms = api.services.rooms
    current = await api.services.database.read(
        lambda conn: rooms.state_event_txn(conn, room_id, "m.room.power_levels", "")
    )
    content = current.content
    content["users"] = {**content.get("users", {}), user: level}
    await rooms.send_event(ALICE, None, room_id, "m.room.power_levels", content, state_key="")


@VERSIONS
async def test_remote_redaction_without_power_of_another_servers_event_is_not_applied(
    api: ClientApi, version: str
) -> None:
    room_id = await _room(api, version)
    alice_msg = await _local_message(api, room_id, "alice's")
    forged = await _redaction(api, room_id, CAROL, alice_msg)
    # Accepted as an event (the auth rules only ask events_default), never applied.
    assert await _accept(api, forged) == "accepted"
    assert await _redacted_by(api, alice_msg) is None
    # The twins: her own server's event, and any event once she holds the redact level.
    dave_msg = await _build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await _accept(api, dave_msg) == "accepted"
    own_server = await _redaction(api, room_id, CAROL, dave_msg.event_id)
    assert await _accept(api, own_server) == "accepted"
    assert await _redacted_by(api, dave_msg.event_id) == own_server.event_id
    await _set_power(api, room_id, CAROL, 50)
    moderator = await _redaction(api, room_id, CAROL, alice_msg)
    assert await _accept(api, moderator) == "accepted"
    assert await _redacted_by(api, alice_msg) == moderator.event_id


@VERSIONS
async def test_remote_redaction_from_another_room_is_never_applied(
    api: ClientApi, version: str
) -> None:
    public = await _room(api, version)
    private = await api.services.rooms.create_room(
        RoomConfig(creator=ALICE, room_version=version, preset="private_chat")
    )
    secret = await _local_message(api, private, "secret")
    # Carol moderates the public room and redacts from it the private room's event.
    await _set_power(api, public, CAROL, 100)
    across = await _redaction(api, public, CAROL, secret)
    assert await _accept(api, across) == "accepted"
    assert await _redacted_by(api, secret) is None
    # The twin: Alice's own redaction in the private room applies.
    await api.services.rooms.send_event(
        ALICE, None, private, "m.room.redaction", {}, redacts=secret
    )
    assert await _redacted_by(api, secret) is not None
    assert await _redacted_by(api, secret) != across.event_id


@VERSIONS
async def test_redaction_before_its_target_is_held_then_judged_by_the_rule(
    api: ClientApi, version: str
) -> None:
    room_id = await _room(api, version)
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    # Dave's message, and two redactions of it built beside it (they cannot cite it).
    dave_msg = await _build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "late"}
    )
    own_server = await _redaction(api, room_id, CAROL, dave_msg.event_id, prev_events=tips)
    assert await _accept(api, own_server) == "accepted"
    assert await _redacted_by(api, dave_msg.event_id) is None  # nothing to apply it to
    assert await _accept(api, dave_msg) == "accepted"
    assert await _redacted_by(api, dave_msg.event_id) == own_server.event_id
    # The twin: held, then not applied, when the late target is another server's event.
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    erin_msg = await _build(
        api, room_id, sender=ERIN, type_="m.room.message", content={"body": "erin's"}
    )
    forged = await _redaction(api, room_id, CAROL, erin_msg.event_id, prev_events=tips)
    assert await _accept(api, forged) == "accepted"
    assert await _accept(api, erin_msg) == "accepted"
    assert await _redacted_by(api, erin_msg.event_id) is None


@VERSIONS
async def test_soft_failed_redaction_is_never_applied(api: ClientApi, version: str) -> None:
    room_id = await _room(api, version)
    dave_msg = await _build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await _accept(api, dave_msg) == "accepted"
    before_ban = await api.services.database.read(store_events.get_forward_extremities, room_id)
    await api.services.rooms.update_membership(ALICE, room_id, CAROL, "ban")
    # Carol's server had not seen the ban: her redaction of her server's event soft-fails.
    stale = await _redaction(api, room_id, CAROL, dave_msg.event_id, prev_events=before_ban)
    assert await _accept(api, stale) == "soft_failed"
    assert await _redacted_by(api, dave_msg.event_id) is None
    # A rejected one neither (Frank never joined); Dave's own redaction applies.
    rejected = await _redaction(api, room_id, f"@frank:{REMOTE}", dave_msg.event_id)
    assert await _accept(api, rejected) == "rejected"
    assert await _redacted_by(api, dave_msg.event_id) is None
    own = await _redaction(api, room_id, DAVE, dave_msg.event_id)
    assert await _accept(api, own) == "accepted"
    assert await _redacted_by(api, dave_msg.event_id) == own.event_id


@VERSIONS
async def test_redact_level_is_the_one_in_force_before_the_redaction(
    api: ClientApi, version: str
) -> None:
    room_id = await _room(api, version)
    alice_msg = await _local_message(api, room_id, "alice's")
    await _set_power(api, room_id, CAROL, 50)
    promoted_at = await api.services.database.read(store_events.get_forward_extremities, room_id)
    await _set_power(api, room_id, CAROL, 0)
    # Carol cites the power levels that made her a moderator, on top of her demotion.
    stale = await _redaction(api, room_id, CAROL, alice_msg, auth_from=promoted_at)
    assert await _accept(api, stale) == "accepted"
    assert await _redacted_by(api, alice_msg) is None
    # The twin: the same, while she still held the level, applies.
    await _set_power(api, room_id, CAROL, 50)
    fresh = await _redaction(api, room_id, CAROL, alice_msg)
    assert await _accept(api, fresh) == "accepted"
    assert await _redacted_by(api, alice_msg) == fresh.event_id


@VERSIONS
async def test_backfilled_redaction_follows_the_same_rule(api: ClientApi, version: str) -> None:
    room_id = await _room(api, version)
    alice_msg = await _local_message(api, room_id, "alice's")
    dave_msg = await _build(
        api, room_id, sender=DAVE, type_="m.room.message", content={"body": "dave's"}
    )
    assert await _accept(api, dave_msg) == "accepted"
    tips = [dave_msg.event_id]
    forged = await _redaction(api, room_id, CAROL, alice_msg, prev_events=tips)
    own_server = await _redaction(api, room_id, CAROL, dave_msg.event_id, prev_events=tips)
    await _local_message(api, room_id, "newer")
    assert await _accept(api, forged, backfilled=True) == "accepted"
    assert await _accept(api, own_server, backfilled=True) == "accepted"
    assert await _redacted_by(api, alice_msg) is None
    assert await _redacted_by(api, dave_msg.event_id) == own_server.event_id
