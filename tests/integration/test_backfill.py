"""History from before a remote join, fetched with /backfill as a reader pages back.

Relay A's Alice writes messages, then Bob of relay B joins: B holds the room's state
and what came after the join, nothing before. Bob paging /messages backwards makes B
ask A for the rest (`GET /_matrix/federation/v1/backfill`), check it as any received
PDU and serve it in order; a second pass over the same history stays local.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import Any

import pytest

from tests.federation.conftest import relay_config
from tests.federation.peers import membership_of
from tests.integration.conftest import RelayProcess
from tests.integration.matrix_client import MatrixUser
from tests.support import wait_until

pytestmark = pytest.mark.integration


def _backfill_requests(relay: RelayProcess) -> int:
    """/backfill requests the relay sent (relay/federation/backfill.py logs each)."""
    return len(re.findall(r"backfill of \S+ from \S+", relay.log()))


def _rows(relay: RelayProcess, sql: str, *args: object) -> list[tuple]:
    path = relay_config(relay).database_path
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, args).fetchall()


def _join_late(
    relays: tuple[RelayProcess, RelayProcess], n: int, visibility: str | None = None
) -> tuple[MatrixUser, str, list[str]]:
    """Alice's room on A with `n` messages, which Bob of B then joins: (Bob, room, the
    messages). `visibility`: the room's history_visibility (default: the preset's)."""
    a, b = relays
    alice = MatrixUser.login(a.client_url, "alice")
    bob = MatrixUser.login(b.client_url, "bob")
    body: dict[str, Any] = {"preset": "private_chat", "name": "history"}
    if visibility is not None:
        body["initial_state"] = [
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": visibility},
            }
        ]
    room_id = alice.create_room(**body)
    before = [f"before {i:03d}" for i in range(n)]
    for text in before:
        alice.send(room_id, text)
    alice.invite(room_id, bob.user_id)
    bob.wait_for_invite(room_id)
    bob.join(room_id, via=[a.server_name])
    wait_until(lambda: membership_of(alice, room_id, bob.user_id) == "join", what="join")
    return bob, room_id, before


def _page_back(user: MatrixUser, room_id: str, token: str, limit: int) -> list[dict[str, Any]]:
    """Every event before `token`, oldest first, paging /messages backwards."""
    events: list[dict[str, Any]] = []
    for _ in range(100):
        body = user.call(
            "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "from": token, "limit": limit}
        )
        events.extend(body["chunk"])
        if "end" not in body:
            return events[::-1]
        token = body["end"]
    raise AssertionError("pagination never ended")


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


# 30: one /backfill request brings it all; 75: more than one is needed, and the oldest
# event of the newer batch is accepted on the state A reports at its prev events.
@pytest.mark.parametrize("n", [30, 75])
def test_paging_back_past_the_join_backfills_the_history_once(
    two_relays: tuple[RelayProcess, RelayProcess], n: int
) -> None:
    b = two_relays[1]
    bob, room_id, before = _join_late(two_relays, n)
    bob.sync(timeout_ms=0)
    # B holds nothing of the room's timeline from before Bob's join (the state it got
    # with the join is kept apart, as outliers).
    [(held,)] = _rows(
        b,
        "SELECT count(*) FROM events WHERE room_id = ? AND outlier = 0 AND type = 'm.room.message'",
        room_id,
    )
    assert held == 0
    assert _backfill_requests(b) == 0

    # As a client does: page back from the prev_batch of a fresh /sync.
    initial = bob.call("GET", "/sync", params={"timeout": 0})
    timeline = initial["rooms"]["join"][room_id]["timeline"]
    events = [*_page_back(bob, room_id, timeline["prev_batch"], 10), *timeline["events"]]
    # Shared history (the private_chat default): all of it, oldest first, each once,
    # down to the room's creation.
    assert _bodies(events) == before
    assert events[0]["type"] == "m.room.create"
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert events[-1]["type"] == "m.room.member" and events[-1]["state_key"] == bob.user_id
    requests = _backfill_requests(b)
    assert requests >= (1 if n < 50 else 2)

    # Stored as history: below every stream position, so /sync does not bring it as new.
    [(newest,)] = _rows(
        b,
        "SELECT max(stream_ordering) FROM events WHERE room_id = ? AND type = 'm.room.message'",
        room_id,
    )
    assert newest < 0
    later = bob.sync(timeout_ms=0)
    timeline = later.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {})
    assert _bodies(timeline.get("events", [])) == []

    # Paging over it again, now from the room's end, is local: no further /backfill.
    again = bob.messages(room_id, limit=7)
    assert [e["event_id"] for e in again] == ids
    assert _backfill_requests(b) == requests


def test_joined_history_visibility_keeps_backfilled_history_hidden(
    two_relays: tuple[RelayProcess, RelayProcess],
) -> None:
    b = two_relays[1]
    bob, room_id, _ = _join_late(two_relays, 30, visibility="joined")
    events = bob.messages(room_id, limit=10)
    # B fetched the history (its server may hold it), but Bob was not in the room then.
    assert _backfill_requests(b) >= 1
    assert _bodies(events) == []
    assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id for e in events)
