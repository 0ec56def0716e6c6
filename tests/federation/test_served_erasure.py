"""What other servers get of an erased user's events (`erase: true`), through the real
federation app in process: /event, /backfill and /get_missing_events serve them pruned to
a server that had no user joined when they were sent (ELSEWHERE, whose Erin joined
after), and whole to one that had (REMOTE, whose Carol was there): the one rule of
relay/rooms/visibility.py (`visible_to_server_txn`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.config import config_from_dict
from relay.events.pdu import Pdu
from relay.events.redaction import redact
from relay.federation.client import FederationClient, segment
from relay.federation.routes import federation_app
from relay.operator import actions as operator
from relay.rooms.create import RoomConfig
from relay.runtime.identity import SigningKey
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import trust_key
from tests.federation.test_served_redactions import _Here
from tests.rooms.remote_rooms import (
    ALICE,
    CAROL,
    ELSEWHERE,
    ELSEWHERE_KEY,
    ERIN,
    REMOTE,
    REMOTE_KEY,
    accept,
    build,
    local_message,
)

V1 = "/_matrix/federation/v1"
BOB = f"@bob:{SERVER_NAME}"


def _client(api: ClientApi, tmp_path: Path, name: str, key: SigningKey) -> FederationClient:
    return FederationClient(
        config_from_dict({"server_name": name}, tmp_path / name),
        key,
        resolver=_Here(),  # type: ignore[arg-type]
        transport=httpx.ASGITransport(app=federation_app(api.services)),
    )


@pytest.fixture
async def servers(api: ClientApi, tmp_path: Path) -> AsyncIterator[dict[str, FederationClient]]:
    """REMOTE's and ELSEWHERE's federation clients on the relay's federation app."""
    await trust_key(api, REMOTE, REMOTE_KEY)
    await trust_key(api, ELSEWHERE, ELSEWHERE_KEY)
    clients = {
        REMOTE: _client(api, tmp_path, REMOTE, REMOTE_KEY),
        ELSEWHERE: _client(api, tmp_path, ELSEWHERE, ELSEWHERE_KEY),
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


async def _room(api: ClientApi, version: str, *, erase: bool) -> tuple[str, Pdu, str]:
    """Alice's public room: Carol of REMOTE joins, Bob (local) writes, Bob is deactivated
    (erased or not), Erin of ELSEWHERE joins. (room id, Bob's message, the last event)."""
    await api.add_user("alice")
    await api.add_user("bob")
    rooms = api.services.rooms
    room_id = await rooms.create_room(
        RoomConfig(creator=ALICE, room_version=version, preset="public_chat")
    )
    await rooms.update_membership(BOB, room_id, BOB, "join")
    carol = await build(
        api,
        room_id,
        sender=CAROL,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=CAROL,
    )
    assert await accept(api, carol) == "accepted"
    message_id = await rooms.send_event(
        BOB, None, room_id, "m.room.message", {"msgtype": "m.text", "body": "bob's secret"}
    )
    message = await api.services.database.read(lambda conn: rooms.get_pdu_txn(conn, message_id))
    assert message is not None
    services = api.services
    await operator.deactivate_user(services.accounts, rooms, BOB, erase=erase)
    erin = await build(
        api,
        room_id,
        sender=ERIN,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=ERIN,
    )
    assert await accept(api, erin) == "accepted"
    last = await local_message(api, room_id, "after")
    return room_id, message, last


def _served(events: list[dict[str, Any]], message: Pdu) -> dict[str, Any]:
    [event] = [e for e in events if e.get("signatures") == message.as_dict()["signatures"]]
    return event


async def _fetched(client: FederationClient, room_id: str, message: Pdu, last: str) -> list[Any]:
    """Bob's message as /event, /backfill and /get_missing_events serve it."""
    one = await client.get_json(SERVER_NAME, f"{V1}/event/{segment(message.event_id)}")
    back = await client.get_json(
        SERVER_NAME, f"{V1}/backfill/{room_id}", query={"v": last, "limit": "100"}
    )
    missing = await client.post_json(
        SERVER_NAME,
        f"{V1}/get_missing_events/{room_id}",
        {"earliest_events": [], "latest_events": [last], "limit": 100},
    )
    return [
        _served(one["pdus"], message),
        _served(back["pdus"], message),
        _served(missing["events"], message),
    ]


@pytest.mark.parametrize("version", ["1", "10", "12"])
async def test_erased_users_events_are_served_pruned_to_servers_that_joined_later(
    api: ClientApi, servers: dict[str, FederationClient], version: str
) -> None:
    room_id, message, last = await _room(api, version, erase=True)
    pruned = redact(message.as_dict(), message.room_version)
    for served in await _fetched(servers[ELSEWHERE], room_id, message, last):
        assert served == pruned
    # The twin: REMOTE had Carol in the room when Bob wrote; it still gets the event whole.
    for served in await _fetched(servers[REMOTE], room_id, message, last):
        assert served == message.as_dict()


async def test_a_deactivated_users_events_are_served_whole_without_erase(
    api: ClientApi, servers: dict[str, FederationClient]
) -> None:
    room_id, message, last = await _room(api, "10", erase=False)
    for served in await _fetched(servers[ELSEWHERE], room_id, message, last):
        assert served == message.as_dict()
