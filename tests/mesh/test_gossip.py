"""relay/mesh/gossip.py's judgement of what a peer lacks, over a real room in process:
given the peer's forward extremities, the events we hold that it does not, oldest first."""

from __future__ import annotations

from relay.mesh.gossip import events_peer_lacks_txn
from store import events as store_events
from tests.client.conftest import ClientApi
from tests.client.conftest import api as api  # the in-process relay fixture
from tests.client.helpers import create_room, send


async def _room_with(api: ClientApi, count: int) -> tuple[str, list[str]]:
    alice = await api.login("alice")
    room_id = await create_room(api, alice)
    return room_id, [await send(api, alice, room_id, f"m{i}") for i in range(count)]


async def test_a_peer_at_our_tips_lacks_nothing(api: ClientApi) -> None:
    room_id, _ = await _room_with(api, 3)
    tips = await api.services.database.read(store_events.get_forward_extremities, room_id)
    assert await api.services.database.read(events_peer_lacks_txn, room_id, tips) == []


async def test_a_peer_behind_lacks_what_came_after_its_tip_oldest_first(api: ClientApi) -> None:
    room_id, sent = await _room_with(api, 6)
    lacks = await api.services.database.read(events_peer_lacks_txn, room_id, [sent[2]])
    assert lacks == sent[3:]


async def test_the_answer_is_cut_at_the_limit_keeping_the_oldest(api: ClientApi) -> None:
    room_id, sent = await _room_with(api, 6)
    lacks = await api.services.database.read(events_peer_lacks_txn, room_id, [sent[0]], 2)
    assert lacks == sent[1:3]


async def test_a_peer_naming_only_unknown_events_lacks_the_whole_room(api: ClientApi) -> None:
    room_id, sent = await _room_with(api, 2)
    lacks = await api.services.database.read(events_peer_lacks_txn, room_id, ["$unknown"])
    assert lacks[-2:] == sent
    # The room's own state events come first, the create event before all.
    first = await api.services.database.read(store_events.get_event_row, lacks[0])
    assert first is not None and first["type"] == "m.room.create"
