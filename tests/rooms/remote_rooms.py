"""Rooms with users of other servers, and their events and redactions, for in-process tests
(tests/rooms, tests/client, tests/federation): events are built and signed as their sender's
server would (`remote_pdu`), and received as any remote PDU (`accept_pdu_txn`)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.events.auth import auth_types_for_event
from relay.events.pdu import Pdu, finalize_event, reference_pairs
from relay.rooms.remote_pdus import accept_pdu_txn
from relay.rooms.service import RoomConfig
from relay.runtime.identity import new_signing_key
from store import accounts as store_accounts
from store import events as store_events
from store import state as store_state
from tests.client.conftest import SERVER_NAME, ClientApi

REMOTE = "remote.test"
REMOTE_KEY = new_signing_key()
ALICE = f"@alice:{SERVER_NAME}"
CAROL = f"@carol:{REMOTE}"
DAVE = f"@dave:{REMOTE}"
ELSEWHERE = "elsewhere.test"
ELSEWHERE_KEY = new_signing_key()
ERIN = f"@erin:{ELSEWHERE}"
ALL_VERSIONS = [str(v) for v in range(1, 13)]
VERSIONS = pytest.mark.parametrize("version", ALL_VERSIONS)
#: Versions with *handling redactions* (v3+): the auth rules accept any redaction, which is
#: applied or not once its target is known. In v1/v2 the redact level is an auth rule.
HANDLED_REDACTIONS = pytest.mark.parametrize("version", ALL_VERSIONS[2:])


def remote_pdu(
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
    if rv.event_id_in_event:
        ids = partial["prev_events"] + partial["auth_events"]
        cited = api.services.rooms.get_pdus_txn(conn, ids)
        partial["prev_events"] = reference_pairs(partial["prev_events"], cited)
        partial["auth_events"] = reference_pairs(partial["auth_events"], cited)
    server = sender.partition(":")[2]
    key = ELSEWHERE_KEY if server == ELSEWHERE else REMOTE_KEY
    return finalize_event(partial, rv, server, key.key_id, key.key)


async def build(api: ClientApi, room_id: str, **kw: Any) -> Pdu:
    return await api.services.database.read(lambda conn: remote_pdu(api, conn, room_id, **kw))


async def accept(api: ClientApi, pdu: Pdu, **kw: Any) -> str:
    rooms = api.services.rooms
    outcome = await api.services.database.write(lambda conn: accept_pdu_txn(rooms, conn, pdu, **kw))
    return outcome.status


async def redaction(api: ClientApi, room_id: str, sender: str, target: str, **kw: Any) -> Pdu:
    return await build(
        api, room_id, sender=sender, type_="m.room.redaction", content={}, redacts=target, **kw
    )


async def redacted_by(api: ClientApi, event_id: str) -> str | None:
    rooms = api.services.rooms
    found = await api.services.database.read(lambda conn: rooms.redacted_by_txn(conn, event_id))
    return found.event_id if found is not None else None


async def shared_room(api: ClientApi, version: str, preset: str = "public_chat") -> str:
    """Alice's room (power 100) that Carol and Dave of REMOTE and Erin of ELSEWHERE (power
    0) joined."""
    if await api.services.database.read(store_accounts.get_user, ALICE) is None:
        await api.add_user("alice")
    room_id = await api.services.rooms.create_room(
        RoomConfig(creator=ALICE, room_version=version, preset=preset)
    )
    for user in (CAROL, DAVE, ERIN):
        join = await build(
            api,
            room_id,
            sender=user,
            type_="m.room.member",
            content={"membership": "join"},
            state_key=user,
        )
        assert await accept(api, join) == "accepted"
    return room_id


async def local_message(api: ClientApi, room_id: str, body: str) -> str:
    return await api.services.rooms.send_event(
        ALICE, None, room_id, "m.room.message", {"msgtype": "m.text", "body": body}
    )


async def set_power(api: ClientApi, room_id: str, user: str, level: int) -> None:
    rooms = api.services.rooms
    current = await api.services.database.read(
        lambda conn: rooms.state_event_txn(conn, room_id, "m.room.power_levels", "")
    )
    content = current.content
    content["users"] = {**content.get("users", {}), user: level}
    await rooms.send_event(ALICE, None, room_id, "m.room.power_levels", content, state_key="")
