"""store.remote_knocks: knocks on rooms on other servers, replaced, read and dropped."""

from __future__ import annotations

import sqlite3

from store import db, remote_knocks

ROOM = "!far:other.example"
ALICE = "@alice:kit.example"
BOB = "@bob:kit.example"
STRIPPED = [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]


def _knock(conn: sqlite3.Connection, user_id: str, event_id: str, version: str = "10") -> None:
    remote_knocks.put_knock(
        conn,
        room_id=ROOM,
        user_id=user_id,
        event_id=event_id,
        room_version=version,
        server="other.example",
        knock_state=STRIPPED,
    )


def test_stored_knock_reads_back_and_a_newer_one_replaces_it(conn: sqlite3.Connection) -> None:
    assert remote_knocks.knock_state(conn, ROOM, ALICE) == []
    assert remote_knocks.knock_server(conn, ROOM, ALICE) is None
    assert remote_knocks.knocked_room_version(conn, ROOM) is None
    with db.write(conn):
        _knock(conn, ALICE, "$first")
    assert remote_knocks.knock_state(conn, ROOM, ALICE) == STRIPPED
    assert remote_knocks.knock_server(conn, ROOM, ALICE) == "other.example"
    assert remote_knocks.knocked_room_version(conn, ROOM) == "10"
    with db.write(conn):
        _knock(conn, ALICE, "$second", version="11")
    assert remote_knocks.knocked_room_version(conn, ROOM) == "11"


def test_rescinding_drops_one_knock_joining_drops_all(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        _knock(conn, ALICE, "$a")
        _knock(conn, BOB, "$b")
        remote_knocks.delete_knock(conn, ROOM, ALICE)
    assert remote_knocks.knock_server(conn, ROOM, ALICE) is None
    assert remote_knocks.knock_server(conn, ROOM, BOB) == "other.example"
    with db.write(conn):
        remote_knocks.delete_knocks_on_room(conn, ROOM)
    assert remote_knocks.knock_server(conn, ROOM, BOB) is None
