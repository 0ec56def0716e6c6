"""The PDU cache holds only committed events: a write that stores a PDU and then fails
leaves nothing in the cache that the database does not hold."""

from __future__ import annotations

import pytest

from relay.events.pdu import Pdu
from relay.rooms.pdu_cache import PDU_CACHE_SIZE, PduCache
from relay.rooms.remote_pdus import accept_pdu_txn
from store import Connection
from store import events as store_events
from tests.client.conftest import ClientApi
from tests.rooms.remote_rooms import ALICE, CAROL, build, shared_room


class Boom(Exception):
    """The write's own failure, after it stored its PDU."""


async def _stored(api: ClientApi, event_id: str) -> bool:
    return await api.services.database.read(store_events.event_exists, event_id)


async def test_a_local_event_written_then_rolled_back_is_not_cached(api: ClientApi) -> None:
    room_id = await shared_room(api, "11")
    rooms = api.services.rooms
    made: list[Pdu] = []

    def send_then_fail(conn: Connection) -> None:
        rv = rooms.room_version_txn(conn, room_id)
        made.append(
            rooms.append_local_event_txn(
                conn, rv, room_id, sender=ALICE, type_="m.room.message", content={"body": "x"}
            )
        )
        # Read back inside the same write, as the rest of a write may do.
        assert rooms.get_pdu_txn(conn, made[0].event_id) is not None
        raise Boom

    with pytest.raises(Boom):
        await api.services.database.write(send_then_fail)
    (pdu,) = made
    assert not await _stored(api, pdu.event_id)
    assert rooms.pdus.get(pdu.event_id) is None


async def test_a_remote_pdu_accepted_then_rolled_back_is_not_cached(api: ClientApi) -> None:
    room_id = await shared_room(api, "12")
    rooms = api.services.rooms
    msg = await build(api, room_id, sender=CAROL, type_="m.room.message", content={"body": "y"})

    def accept_then_fail(conn: Connection) -> None:
        assert accept_pdu_txn(rooms, conn, msg).status == "accepted"
        raise Boom

    with pytest.raises(Boom):
        await api.services.database.write(accept_then_fail)
    assert not await _stored(api, msg.event_id)
    assert rooms.pdus.get(msg.event_id) is None


async def test_a_committed_event_is_cached(api: ClientApi) -> None:
    room_id = await shared_room(api, "12")
    rooms = api.services.rooms
    msg = await build(api, room_id, sender=CAROL, type_="m.room.message", content={"body": "z"})
    outcome = await api.services.database.write(lambda conn: accept_pdu_txn(rooms, conn, msg))
    assert outcome.status == "accepted"
    assert rooms.pdus.get(msg.event_id) is msg
    sent = await rooms.send_event(ALICE, None, room_id, "m.room.message", {"body": "w"})
    cached = rooms.pdus.get(sent)
    assert cached is not None and cached.event_id == sent


async def test_the_cache_keeps_at_most_its_size_and_drops_the_least_recently_used(
    api: ClientApi,
) -> None:
    """Bounded: a long history never makes it hold more than its size (each event is
    ~4 kB in memory), and the events just read stay."""
    room_id = await shared_room(api, "11")
    rooms = api.services.rooms
    cache = PduCache(size=8)
    pdus = [
        await build(api, room_id, sender=CAROL, type_="m.room.message", content={"body": str(i)})
        for i in range(12)
    ]
    for pdu in pdus[:8]:
        cache.put(pdu)
    assert cache.get(pdus[0].event_id) is pdus[0]  # read: now the most recent
    for pdu in pdus[8:]:
        cache.put(pdu)
    assert len(cache) == 8
    kept = {pdu.event_id for pdu in pdus if cache.get(pdu.event_id) is not None}
    assert kept == {pdus[0].event_id, *(pdu.event_id for pdu in pdus[5:])}
    assert len(rooms.pdus) <= PDU_CACHE_SIZE
