"""/messages and /context in topological order, (depth, stream_ordering), as Synapse's:
remote events that arrive after newer local ones (a partition, gap filling) are served
where the DAG puts them; stream tokens (a sync's prev_batch) keep working.

The late events are built in-process as a remote server would build them on an older
tip and accepted through relay.rooms.remote_pdus, as the federation layer does."""

from __future__ import annotations

import json
from typing import Any

from relay.rooms.remote_pdus import accept_pdu_txn
from store import events as store_events
from tests.client.conftest import SERVER_NAME, ClientApi
from tests.client.helpers import send
from tests.rooms.remote_rooms import REMOTE, remote_pdu

V3 = "/_matrix/client/v3"
CAROL = f"@carol:{REMOTE}"


async def _accept(api: ClientApi, room_id: str, **kw: Any) -> str:
    rooms = api.services.rooms

    def txn(conn: Any) -> str:
        pdu = remote_pdu(api, conn, room_id, **kw)
        assert accept_pdu_txn(rooms, conn, pdu).status == "accepted"
        return pdu.event_id

    return await api.services.database.write(txn)


async def _forked_room(api: ClientApi) -> tuple[dict[str, str], str, dict[str, str]]:
    """A public room where Carol (remote) joins; then Alice writes l1..l5 while Carol's
    r1, r2 (written on Carol's join, so at the depths of l1, l2) arrive only after them.

    Stream (arrival) order: ... join, l1..l5, r1, r2.
    Topological order:      ... join, l1, r1, l2, r2, l3, l4, l5 (equal depths: arrival)."""
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"preset": "public_chat"})
    room_id = r.json()["room_id"]
    join = await _accept(
        api,
        room_id,
        sender=CAROL,
        type_="m.room.member",
        content={"membership": "join"},
        state_key=CAROL,
    )
    ids = {"join": join}
    for i in range(1, 6):
        ids[f"l{i}"] = await send(api, alice, room_id, f"l{i}")
    prev = join
    for i in (1, 2):
        ids[f"r{i}"] = prev = await _accept(
            api,
            room_id,
            sender=CAROL,
            type_="m.room.message",
            content={"msgtype": "m.text", "body": f"r{i}"},
            prev_events=[prev],
        )
    return alice, room_id, ids


TOPOLOGICAL = ["l1", "r1", "l2", "r2", "l3", "l4", "l5"]


def _names(ids: dict[str, str], events: list[dict[str, Any]]) -> list[str]:
    by_id = {event_id: name for name, event_id in ids.items()}
    return [by_id[e["event_id"]] for e in events if e["event_id"] in by_id]


async def _messages(api: ClientApi, headers: dict[str, str], room_id: str, **params: Any):
    r = await api.http.get(f"{V3}/rooms/{room_id}/messages", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def _page_all(
    api: ClientApi, headers: dict[str, str], room_id: str, **params: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every page from `params` on; the events and the `end` tokens."""
    events: list[dict[str, Any]] = []
    ends: list[str] = []
    for _ in range(100):
        body = await _messages(api, headers, room_id, **params)
        events.extend(body["chunk"])
        if "end" not in body:
            return events, ends
        ends.append(body["end"])
        params["from"] = body["end"]
    raise AssertionError("pagination never ended")


async def test_late_remote_pdus_are_served_in_depth_order_not_arrival_order(
    api: ClientApi,
) -> None:
    alice, room_id, ids = await _forked_room(api)
    streams = await api.services.database.read(store_events.get_stream_orderings, ids.values())
    assert streams[ids["r1"]] > streams[ids["l5"]], "r1 arrived after l5"
    for limit in (1, 2, 3, 100):
        back, ends = await _page_all(api, alice, room_id, dir="b", limit=limit)
        assert _names(ids, back) == ["join", *TOPOLOGICAL][::-1], limit
        assert back[-1]["type"] == "m.room.create"
        assert all(end.startswith("t") for end in ends)
        forward, _ = await _page_all(api, alice, room_id, dir="f", limit=limit)
        assert [e["event_id"] for e in forward] == [e["event_id"] for e in reversed(back)]


async def test_paging_back_from_a_sync_prev_batch_never_repeats_the_timeline(
    api: ClientApi,
) -> None:
    alice, room_id, ids = await _forked_room(api)
    sync_filter = json.dumps({"room": {"timeline": {"limit": 2}}})
    r = await api.http.get(f"{V3}/sync", headers=alice, params={"filter": sync_filter})
    room = r.json()["rooms"]["join"][room_id]
    # /sync is in stream order: its timeline is the two that arrived last.
    assert _names(ids, room["timeline"]["events"]) == ["r1", "r2"]
    assert room["timeline"]["limited"]
    back, _ = await _page_all(
        api, alice, room_id, dir="b", limit=2, **{"from": room["timeline"]["prev_batch"]}
    )
    # Everything stored before the timeline, each once, in depth order; r1 and r2 (at
    # the depths of l1 and l2) stay out, although later pages reach their depths.
    assert _names(ids, back) == ["join", "l1", "l2", "l3", "l4", "l5"][::-1]
    assert back[-1]["type"] == "m.room.create"


async def test_a_gap_between_two_syncs_is_filled_with_from_and_to_stream_tokens(
    api: ClientApi,
) -> None:
    alice, room_id, ids = await _forked_room(api)
    before = (await _messages(api, alice, room_id, dir="b", limit=1))["start"]
    assert before.startswith("s")
    for i in (6, 7, 8):
        ids[f"l{i}"] = await send(api, alice, room_id, f"l{i}")
    ids["r3"] = await _accept(
        api,
        room_id,
        sender=CAROL,
        type_="m.room.message",
        content={"msgtype": "m.text", "body": "r3"},
        prev_events=[ids["r2"]],
    )
    now = (await _messages(api, alice, room_id, dir="b", limit=1))["start"]
    back, _ = await _page_all(api, alice, room_id, dir="b", limit=1, to=before, **{"from": now})
    # Exactly what was stored between the two tokens, deepest first: r3 sits at the
    # depth of l3, below l6..l8.
    assert _names(ids, back) == ["l8", "l7", "l6", "r3"]
    forward, _ = await _page_all(api, alice, room_id, dir="f", limit=1, **{"from": before})
    # Forwards from a stream token: what was stored after it, oldest first, each once;
    # l2..l5, stored before the token, never come back although they lie between r3
    # and l6 in depth.
    assert _names(ids, forward) == ["r3", "l6", "l7", "l8"]


async def test_context_is_topological_and_its_tokens_page_on(api: ClientApi) -> None:
    alice, room_id, ids = await _forked_room(api)
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/context/{ids['r2']}", headers=alice, params={"limit": 4}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert _names(ids, body["events_before"]) == ["l2", "r1"]
    assert _names(ids, body["events_after"]) == ["l3", "l4"]
    back = await _messages(api, alice, room_id, dir="b", limit=2, **{"from": body["start"]})
    assert _names(ids, back["chunk"]) == ["l1", "join"]
    forward = await _messages(api, alice, room_id, dir="f", limit=5, **{"from": body["end"]})
    assert _names(ids, forward["chunk"]) == ["l5"]


async def test_members_at_a_topological_token(api: ClientApi) -> None:
    alice, room_id, ids = await _forked_room(api)
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/context/{ids['join']}", headers=alice, params={"limit": 0}
    )
    before_carol = r.json()["start"]
    r = await api.http.get(
        f"{V3}/rooms/{room_id}/members", headers=alice, params={"at": before_carol}
    )
    assert r.status_code == 200, r.text
    assert [e["state_key"] for e in r.json()["chunk"]] == [f"@alice:{SERVER_NAME}"]
