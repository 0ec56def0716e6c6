"""store.remote_invites: invites to rooms on other servers, replaced, read and dropped."""

from __future__ import annotations

import sqlite3

from store import db, remote_invites

ROOM = "!far:other.example"
ALICE = "@alice:kit.example"
BOB = "@bob:kit.example"
STRIPPED = [{"type": "m.room.name", "state_key": "", "content": {"name": "Far"}}]


def _invite(conn: sqlite3.Connection, user_id: str, event_id: str, version: str = "11") -> None:
    remote_invites.put_invite(
        conn,
        room_id=ROOM,
        user_id=user_id,
        event_id=event_id,
        room_version=version,
        invite_state=STRIPPED,
    )


def test_stored_invite_reads_back_and_a_newer_one_replaces_it(conn: sqlite3.Connection) -> None:
    assert remote_invites.invite_event_id(conn, ROOM, ALICE) is None
    assert remote_invites.invite_state(conn, ROOM, ALICE) == []
    assert remote_invites.invited_room_version(conn, ROOM) is None
    with db.write(conn):
        _invite(conn, ALICE, "$first")
    assert remote_invites.invite_event_id(conn, ROOM, ALICE) == "$first"
    assert remote_invites.invite_state(conn, ROOM, ALICE) == STRIPPED
    assert remote_invites.invited_room_version(conn, ROOM) == "11"
    with db.write(conn):
        _invite(conn, ALICE, "$second", version="12")
    assert remote_invites.invite_event_id(conn, ROOM, ALICE) == "$second"
    assert remote_invites.invited_room_version(conn, ROOM) == "12"


def test_rejecting_drops_one_invite_joining_drops_all(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        _invite(conn, ALICE, "$a")
        _invite(conn, BOB, "$b")
        remote_invites.delete_invite(conn, ROOM, ALICE)
    assert remote_invites.invite_event_id(conn, ROOM, ALICE) is None
    assert remote_invites.invite_event_id(conn, ROOM, BOB) == "$b"
    with db.write(conn):
        remote_invites.delete_invites_to_room(conn, ROOM)
    assert remote_invites.invite_event_id(conn, ROOM, BOB) is None
