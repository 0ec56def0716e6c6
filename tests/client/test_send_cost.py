"""A send costs the same whatever the room's history: every statement of a
`PUT /send` is planned on an index by a key narrower than the room (no SCAN, no walk
of the room's events), and the work SQLite does for it (virtual
machine instructions, counted with a progress handler) does not grow when the room
holds ten times more messages. Counts of work, not timings."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.rooms.service import RoomService
from tests.client.conftest import SERVER_NAME, ClientApi

V3 = "/_matrix/client/v3"
ALICE = f"@alice:{SERVER_NAME}"


@dataclass
class Work:
    statements: list[str] = field(default_factory=list)
    vm_steps: int = 0


def _add_messages(api: ClientApi, room_id: str, count: int) -> Callable[[sqlite3.Connection], None]:
    rooms: RoomService = api.services.rooms

    def txn(conn: sqlite3.Connection) -> None:
        rv = rooms.room_version_txn(conn, room_id)
        for i in range(count):
            rooms.append_local_event_txn(
                conn,
                rv,
                room_id,
                sender=ALICE,
                type_="m.room.message",
                content={"msgtype": "m.text", "body": f"history {i}"},
            )

    return txn


async def _one_send(api: ClientApi, headers: dict[str, str], room_id: str, txn: str) -> Work:
    """Send one message over HTTP, recording every statement and counting VM steps."""
    database = api.services.database
    connections = [database._writer, *database._all_readers]
    work = Work()

    def step() -> int:
        work.vm_steps += 1
        return 0

    for conn in connections:
        conn.set_trace_callback(work.statements.append)
        conn.set_progress_handler(step, 1)
    try:
        r = await api.http.put(
            f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
            headers=headers,
            json={"msgtype": "m.text", "body": "now"},
        )
    finally:
        for conn in connections:
            conn.set_trace_callback(None)
            conn.set_progress_handler(None, 1)
    assert r.status_code == 200, r.text
    return work


def _ours(statements: list[str]) -> list[str]:
    return [s for s in statements if "'event_search_" not in s]


#: The room's history, in index order: a search keyed by the room alone walks all of it.
ROOM_HISTORY_INDEXES = ("events_room_stream", "events_room_depth_stream")


def _walks(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    """Every plan step of `statements` that reads a table whole (SQLite says SCAN) or a
    room's whole history (SEARCH on a room index by room_id alone: what the forward
    extremities query did), with its statement."""
    found = []
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            continue  # BEGIN, COMMIT, SAVEPOINT, INSERT ... VALUES: nothing to plan
        for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
            detail = row[-1]
            whole_room = any(f"INDEX {i} (room_id=?)" in detail for i in ROOM_HISTORY_INDEXES)
            if detail.startswith("SCAN") or whole_room:
                found.append(f"{detail}  <-  {sql}")
    return found


async def test_a_send_does_no_more_work_with_ten_times_the_history(api: ClientApi) -> None:
    alice = await api.login("alice")
    r = await api.http.post(f"{V3}/createRoom", headers=alice, json={"preset": "public_chat"})
    room_id = r.json()["room_id"]
    database = api.services.database

    await database.write(_add_messages(api, room_id, 60))
    short = await _one_send(api, alice, room_id, "short")
    await database.write(_add_messages(api, room_id, 600))
    long = await _one_send(api, alice, room_id, "long")

    # The same statements, each planned on an index. FTS5 runs statements of its own on
    # its shadow tables (`'event_search_data'`, ...) as the search index (event_search)
    # merges its segments: a few sends in, amortized over all of them, and the same
    # whatever the room's history; they are not ours to count.
    assert len(_ours(long.statements)) == len(_ours(short.statements))
    assert await database.read(_walks, long.statements) == []
    # Walking the room's history cost a few VM steps per stored event: 600 more
    # events would add thousands. Without it, the two sends do the same work (give or
    # take the longer ids and counters).
    assert long.vm_steps <= short.vm_steps + 100, (short.vm_steps, long.vm_steps)
