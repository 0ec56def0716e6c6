"""What other servers get of events that redactions name, through the real federation app
in process (signed requests from REMOTE): /event, /state, /event_auth, /backfill and
/get_missing_events serve an event pruned by its room version's redaction algorithm
exactly when a redaction applies (`RoomService.event_for_servers_txn`, asking
`redacted_by_txn`), as Synapse serves it; the redactions themselves, applying or not,
are served as they are (servers need the whole DAG)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.config import config_from_dict
from relay.events.redaction import redact
from relay.events.room_versions import RoomVersion, room_version
from relay.federation.client import FederationClient, segment
from relay.federation.resolver import ResolvedServer, resolved_from_url
from relay.federation.routes import federation_app
from store import events as store_events
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.conftest import api as api  # the in-process relay
from tests.federation.inprocess import trust_key
from tests.rooms.remote_rooms import (
    ALICE,
    CAROL,
    DAVE,
    REMOTE,
    REMOTE_KEY,
    VERSIONS,
    accept,
    build,
    local_message,
    redaction,
    shared_room,
)

V1 = "/_matrix/federation/v1"


class _Here:
    """Every server name resolves to the in-process app."""

    async def resolve(self, server_name: str) -> ResolvedServer:
        return resolved_from_url(f"http://{server_name}")

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def remote(api: ClientApi, tmp_path: Path) -> AsyncIterator[FederationClient]:
    """REMOTE's federation client, talking to the relay's federation app in process; the
    relay knows REMOTE's key."""
    await trust_key(api, REMOTE, REMOTE_KEY)
    client = FederationClient(
        config_from_dict({"server_name": REMOTE}, tmp_path / "remote"),
        REMOTE_KEY,
        resolver=_Here(),  # type: ignore[arg-type]
        transport=httpx.ASGITransport(app=federation_app(api.services)),
    )
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class Room:
    room_id: str
    rv: RoomVersion
    #: Event id -> the event as stored (signed, unredacted).
    original: dict[str, dict[str, Any]]
    #: Events a redaction applies to.
    redacted: set[str]
    #: Events a stored redaction names but does not apply to.
    intact: set[str]
    #: The redactions, applying or not.
    redactions: set[str]
    #: The newest event (Dave's, citing his redacted member event).
    last: str


async def _room(api: ClientApi, version: str) -> Room:
    """A room where some events are redacted (Alice's own message by her; Dave's message
    and his member event with a displayname, by Carol of his server and by Alice) and one
    is named by a redaction that does not apply (Carol, power 0, of Alice's message)."""
    rooms = api.services.rooms
    room_id = await shared_room(api, version)
    kept = await local_message(api, room_id, "kept")
    forged = await redaction(api, room_id, CAROL, kept)
    # v1/v2 refuse it outright (the redact level is an auth rule there); v3+ store it unapplied.
    v1_rules = version in ("1", "2")
    assert await accept(api, forged) == ("rejected" if v1_rules else "accepted")
    own = await local_message(api, room_id, "taken back")
    own_redaction = await rooms.send_event(
        ALICE, None, room_id, "m.room.redaction", {}, redacts=own
    )
    dave_msg = await build(api, room_id, sender=DAVE, type_="m.room.message", content={"body": "d"})
    assert await accept(api, dave_msg) == "accepted"
    same_server = await redaction(api, room_id, CAROL, dave_msg.event_id)
    assert await accept(api, same_server) == "accepted"
    renamed = await build(
        api,
        room_id,
        sender=DAVE,
        type_="m.room.member",
        content={"membership": "join", "displayname": "Dave the Named"},
        state_key=DAVE,
    )
    assert await accept(api, renamed) == "accepted"
    renamed_redaction = await rooms.send_event(
        ALICE, None, room_id, "m.room.redaction", {}, redacts=renamed.event_id
    )
    last = await build(api, room_id, sender=DAVE, type_="m.room.message", content={"body": "e"})
    assert await accept(api, last) == "accepted"
    assert renamed.event_id in last.auth_event_ids

    def originals(conn: Any) -> dict[str, dict[str, Any]]:
        ids = [r["event_id"] for r in store_events.events_in_room_by_stream(conn, room_id, 0)]
        return {eid: pdu.as_dict() for eid, pdu in rooms.get_pdus_txn(conn, ids).items()}

    rv = room_version(version)
    assert rv is not None
    return Room(
        room_id=room_id,
        rv=rv,
        original=await api.services.database.read(originals),
        redacted={own, dave_msg.event_id, renamed.event_id},
        intact={kept},
        redactions={own_redaction, same_server.event_id, renamed_redaction}
        | (set() if v1_rules else {forged.event_id}),
        last=last.event_id,
    )


def _check(room: Room, served: list[dict[str, Any]], must: set[str]) -> None:
    """Each served event is as stored, or pruned exactly when a redaction applies; the
    events `must` are among them."""
    by_id = {}
    for event in served:
        [event_id] = [e for e, original in room.original.items() if _same_event(event, original)]
        by_id[event_id] = event
        original = room.original[event_id]
        if event_id in room.redacted:
            assert event == redact(original, room.rv), event_id
            assert event != original
        else:
            assert event == original, event_id
    assert must <= set(by_id), must - set(by_id)


def _same_event(served: dict[str, Any], original: dict[str, Any]) -> bool:
    # Redaction keeps the hashes and signatures: they name the event.
    return served["hashes"] == original["hashes"] and served["signatures"] == original["signatures"]


@VERSIONS
async def test_event_is_served_redacted_exactly_when_a_redaction_applies(
    api: ClientApi, remote: FederationClient, version: str
) -> None:
    room = await _room(api, version)
    ingest = api.services.ingest
    for event_id in room.redacted | room.intact | room.redactions:
        body = await remote.get_json(SERVER_NAME, f"{V1}/event/{segment(event_id)}")
        _check(room, body["pdus"], {event_id})
        # A receiving server verifies what it got as the same event (signatures hold on
        # the pruned form; the content hash no longer does, which marks it redacted).
        [served] = body["pdus"]
        pdu = await ingest.verified_pdu(served, room.rv)
        assert (pdu.event_id, pdu.as_dict()) == (event_id, served)


@VERSIONS
async def test_state_and_auth_chains_serve_redacted_state_events(
    api: ClientApi, remote: FederationClient, version: str
) -> None:
    room = await _room(api, version)
    [renamed] = room.redacted & {
        e for e, ev in room.original.items() if ev["type"] == "m.room.member"
    }
    body = await remote.get_json(
        SERVER_NAME, f"{V1}/state/{room.room_id}", query={"event_id": room.last}
    )
    _check(room, body["pdus"], {renamed})
    _check(room, body["auth_chain"], set())
    body = await remote.get_json(
        SERVER_NAME, f"{V1}/event_auth/{room.room_id}/{segment(room.last)}"
    )
    _check(room, body["auth_chain"], {renamed})


@VERSIONS
async def test_backfill_and_missing_events_serve_redacted_events(
    api: ClientApi, remote: FederationClient, version: str
) -> None:
    room = await _room(api, version)
    everything = room.redacted | room.intact | room.redactions
    body = await remote.get_json(
        SERVER_NAME, f"{V1}/backfill/{room.room_id}", query={"v": room.last, "limit": "100"}
    )
    _check(room, body["pdus"], everything)
    body = await remote.post_json(
        SERVER_NAME,
        f"{V1}/get_missing_events/{room.room_id}",
        {"earliest_events": [], "latest_events": [room.last], "limit": 100},
    )
    _check(room, body["events"], everything)
