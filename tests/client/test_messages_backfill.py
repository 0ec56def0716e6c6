"""/messages backwards where the room's history has a hole: the page names the missing
events, the `backfill` service is asked for them once, and when no server can give
them the page is still what we have (relay/rooms/reads.py, relay/federation/backfill.py).

The hole is made in-process: Carol (remote.test) sends an event naming a prev event we
never saw, accepted on the state a peer would report there (as a bridged gap is)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from relay.events.auth import auth_types_for_event
from relay.events.pdu import finalize_event
from relay.rooms.remote_pdus import accept_pdu_txn
from store import events as store_events
from store import state as store_state
from tests.client.conftest import ClientApi
from tests.rooms.remote_rooms import REMOTE, REMOTE_KEY, remote_pdu

V3 = "/_matrix/client/v3"
CAROL = f"@carol:{REMOTE}"
MISSING = "$neverseen0000000000000000000000000000000000"
# Nothing listens on the discard port: connecting to "remote.test" is refused at once.
UNREACHABLE = {"federation.servers": {REMOTE: "https://127.0.0.1:9"}}


async def _room_with_a_hole(api: ClientApi) -> tuple[dict[str, str], str, str]:
    """A public room Carol joined; then her message naming MISSING besides our tip."""
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"preset": "public_chat"})
    room_id = r.json()["room_id"]
    rooms = api.services.rooms

    def txn(conn: Any) -> str:
        join = remote_pdu(
            api,
            conn,
            room_id,
            sender=CAROL,
            type_="m.room.member",
            content={"membership": "join"},
            state_key=CAROL,
        )
        assert accept_pdu_txn(rooms, conn, join).status == "accepted"
        state = store_state.get_state_after(conn, join.event_id) or {}
        rv = rooms.room_version_txn(conn, room_id)
        partial: dict[str, Any] = {
            "room_id": room_id,
            "sender": CAROL,
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "after a hole"},
            "origin_server_ts": 1_700_000_000_000,
            "prev_events": [join.event_id, MISSING],
            "depth": store_events.get_depths(conn, [join.event_id])[join.event_id] + 1,
        }
        partial["auth_events"] = sorted(
            {state[k] for k in auth_types_for_event(partial, rv) if k in state}
        )
        msg = finalize_event(partial, rv, REMOTE, REMOTE_KEY.key_id, REMOTE_KEY.key)
        outcome = accept_pdu_txn(rooms, conn, msg, state_before=state)
        assert outcome.status == "accepted", outcome
        return msg.event_id

    return alice, room_id, await api.services.database.write(txn)


class Recorder:
    """A HistoryFetcher that records what it is asked and has nothing to give."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], int]] = []

    async def backfill(self, room_id: str, event_ids: Sequence[str], limit: int) -> int:
        self.calls.append((room_id, list(event_ids), limit))
        return 0


async def _page_back(api: ClientApi, headers: dict[str, str], room_id: str, limit: int):
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/messages", headers=headers, params={"dir": "b", "limit": limit}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_page_that_reaches_a_hole_asks_for_the_missing_events(api: ClientApi) -> None:
    alice, room_id, after_hole = await _room_with_a_hole(api)
    recorder = Recorder()
    api.services.backfill = recorder
    body = await _page_back(api, alice, room_id, 1)
    assert [e["event_id"] for e in body["chunk"]] == [after_hole]
    assert recorder.calls == [(room_id, [MISSING], 1)]


async def test_a_room_without_holes_never_asks(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={})
    room_id = r.json()["room_id"]
    recorder = Recorder()
    api.services.backfill = recorder
    for limit in (1, 100):
        await _page_back(api, alice, room_id, limit)
    assert recorder.calls == []


@pytest.mark.config(UNREACHABLE)
async def test_an_unreachable_server_leaves_the_page_local_and_is_not_asked_again(
    api: ClientApi,
) -> None:
    alice, room_id, after_hole = await _room_with_a_hole(api)
    backfill = api.services.backfill
    body = await _page_back(api, alice, room_id, 100)
    ids = [e["event_id"] for e in body["chunk"]]
    assert ids[0] == after_hole and body["chunk"][-1]["type"] == "m.room.create"
    assert backfill.statistics() == {"requests": 1, "stored": 0}
    # Paging again stays local: the hole was asked for in vain a moment ago.
    again = await _page_back(api, alice, room_id, 100)
    assert [e["event_id"] for e in again["chunk"]] == ids
    assert backfill.statistics() == {"requests": 1, "stored": 0}
