"""Accepting remote PDUs: accepted, rejected, soft-failed, duplicates, forks resolved."""

from __future__ import annotations

from typing import Any

import pytest

from relay.events.pdu import Pdu, finalize_event
from relay.rooms.remote_pdus import MissingEvents, accept_pdu_txn
from relay.rooms.service import RoomConfig
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.rooms.remote_rooms import REMOTE, REMOTE_KEY, build, remote_pdu


async def _public_room(api: ClientApi, version: str) -> str:
    alice = f"@alice:{SERVER_NAME}"
    await api.add_user("alice")
    return await api.services.rooms.create_room(
        RoomConfig(creator=alice, room_version=version, preset="public_chat")
    )


async def _accept(api: ClientApi, pdu: Pdu):
    rooms = api.services.rooms
    return await api.services.database.write(lambda conn: accept_pdu_txn(rooms, conn, pdu))


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
async def test_remote_join_and_message_are_accepted(api: ClientApi, version: str) -> None:
    room_id = await _public_room(api, version)
    carol = f"@carol:{REMOTE}"
    join = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=carol,
    )
    assert (await _accept(api, join)).status == "accepted"
    membership = await api.services.database.read(store_rooms.get_membership, room_id, carol)
    assert membership == "join"
    msg = await build(api, room_id, sender=carol, type_="m.room.message", content={"body": "hi"})
    assert (await _accept(api, msg)).status == "accepted"
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    assert tips == [msg.event_id]
    assert (await _accept(api, msg)).status == "duplicate"


async def test_an_outlier_joins_the_timeline_when_it_arrives_as_part_of_the_room(
    api: ClientApi,
) -> None:
    # Kept first as an outlier (e.g. the event at the edge of a gap bridged with
    # /state_ids), then delivered in the DAG: it must not be taken for a duplicate.
    room_id = await _public_room(api, "12")
    carol = f"@carol:{REMOTE}"
    join = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=carol,
    )
    await _accept(api, join)
    msg = await build(api, room_id, sender=carol, type_="m.room.message", content={"body": "x"})
    rooms = api.services.rooms

    def as_outlier(conn: Any) -> Any:
        return accept_pdu_txn(rooms, conn, msg, outlier=True)

    def timeline(conn: Any) -> set[str]:
        page = store_events.events_in_room_by_stream(conn, room_id, 0, None, 100, "f")
        return {row["event_id"] for row in page}

    assert (await api.services.database.write(as_outlier)).status == "accepted"
    assert msg.event_id not in await api.services.database.read(timeline)
    assert (await api.services.database.write(as_outlier)).status == "duplicate"
    assert (await _accept(api, msg)).status == "accepted"
    assert msg.event_id in await api.services.database.read(timeline)
    row = await api.services.database.read(store_events.get_event_row, msg.event_id)
    assert row is not None and not row["outlier"]
    assert await api.services.database.read(store_state.get_state_before, msg.event_id)
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    assert tips == [msg.event_id]
    assert (await _accept(api, msg)).status == "duplicate"


async def test_message_from_non_member_is_rejected_and_hidden(api: ClientApi) -> None:
    room_id = await _public_room(api, "12")
    mallory = f"@mallory:{REMOTE}"
    msg = await build(api, room_id, sender=mallory, type_="m.room.message", content={"body": "x"})
    outcome = await _accept(api, msg)
    assert outcome.status == "rejected"
    page = await api.services.database.read(
        store_events.events_in_room_by_stream, room_id, 0, None, 100, "f"
    )
    assert msg.event_id not in {row["event_id"] for row in page}
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    assert msg.event_id not in tips


@pytest.mark.parametrize("version", ["10", "12"])
async def test_event_on_stale_state_after_ban_is_soft_failed(api: ClientApi, version: str) -> None:
    room_id = await _public_room(api, version)
    carol = f"@carol:{REMOTE}"
    join = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=carol,
    )
    await _accept(api, join)
    await api.services.rooms.update_membership(f"@alice:{SERVER_NAME}", room_id, carol, "ban")
    # Carol's server had not seen the ban: it builds on her join.
    late = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.message",
        content={"body": "late"},
        prev_events=[join.event_id],
    )
    assert (await _accept(api, late)).status == "soft_failed"
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    assert late.event_id not in tips
    assert await api.services.database.read(store_rooms.get_membership, room_id, carol) == "ban"


async def test_fork_merges_and_state_is_resolved(api: ClientApi) -> None:
    room_id = await _public_room(api, "12")
    carol = f"@carol:{REMOTE}"
    join = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=carol,
    )
    await _accept(api, join)
    # Both sides write concurrently on the same tip.
    remote_msg = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.message",
        content={"body": "remote"},
        prev_events=[join.event_id],
    )
    await api.services.rooms.send_event(
        f"@alice:{SERVER_NAME}", None, room_id, "m.room.topic", {"topic": "local"}, state_key=""
    )
    assert (await _accept(api, remote_msg)).status == "accepted"
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    assert len(tips) == 2
    state = await api.services.database.read(store_state.get_current_state, room_id)
    assert ("m.room.topic", "") in state
    assert state[("m.room.member", carol)] == join.event_id
    # The next local event merges the fork.
    event_id = await api.services.rooms.send_event(
        f"@alice:{SERVER_NAME}", None, room_id, "m.room.message", {"body": "merge"}
    )
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    assert tips == [event_id]


async def test_missing_auth_events_are_reported(api: ClientApi) -> None:
    room_id = await _public_room(api, "11")
    carol = f"@carol:{REMOTE}"
    join = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=carol,
    )
    msg = await api.services.database.read(
        lambda conn: remote_pdu(
            api,
            conn,
            room_id,
            sender=carol,
            type_="m.room.message",
            content={"body": "x"},
        )
    )
    # An event naming an auth event we have never seen.
    partial = msg.as_dict()
    partial["auth_events"] = [*partial["auth_events"], join.event_id]
    forged = finalize_event(partial, msg.room_version, REMOTE, REMOTE_KEY.key_id, REMOTE_KEY.key)
    with pytest.raises(MissingEvents) as info:
        await _accept(api, forged)
    assert info.value.event_ids == [join.event_id]


async def test_backfilled_history_moves_neither_tips_nor_state_nor_the_stream(
    api: ClientApi,
) -> None:
    room_id = await _public_room(api, "12")
    carol = f"@carol:{REMOTE}"
    join = await build(
        api,
        room_id,
        sender=carol,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=carol,
    )
    await _accept(api, join)
    # Written by Carol while joined; by the time it is backfilled she has been banned,
    # which soft-fails a new event but not old history.
    old = await build(api, room_id, sender=carol, type_="m.room.message", content={"body": "x"})
    # Alice bans her before `old` arrives: a fork on the join, as when history comes late.
    await api.services.rooms.update_membership(
        f"@alice:{SERVER_NAME}", room_id, carol, "ban", reason=None
    )
    rooms = api.services.rooms
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    state = await api.services.database.read(store_state.get_current_state, room_id)
    top = await api.services.database.read(store_events.max_stream_ordering)

    def backfill(conn: Any) -> Any:
        return accept_pdu_txn(rooms, conn, old, backfilled=True)

    assert (await api.services.database.write(backfill)).status == "accepted"
    row = await api.services.database.read(store_events.get_event_row, old.event_id)
    assert row is not None and not row["soft_failed"] and row["stream_ordering"] < 0
    assert await api.services.database.read(store_events.get_forward_extremities, room_id) == tips
    assert await api.services.database.read(store_state.get_current_state, room_id) == state
    assert await api.services.database.read(store_events.max_stream_ordering) == top
