"""store.remote_memberships: our users' invites to and knocks on rooms on other servers,
replaced, read and dropped; and the remote_memberships migration, which moves the rows of
the two tables it replaces (remote_invites, remote_knocks) into it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from store import db, remote_memberships, rooms

ROOM = "!far:other.example"
ALICE = "@alice:kit.example"
BOB = "@bob:kit.example"
INVITE_STATE = [{"type": "m.room.name", "state_key": "", "content": {"name": "Far"}}]
KNOCK_STATE = [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]


def _invite(conn: sqlite3.Connection, user_id: str, event_id: str, version: str = "11") -> None:
    remote_memberships.put_remote_membership(
        conn,
        room_id=ROOM,
        user_id=user_id,
        membership="invite",
        event_id=event_id,
        room_version=version,
        stripped_state=INVITE_STATE,
    )


def _knock(conn: sqlite3.Connection, user_id: str, event_id: str, version: str = "10") -> None:
    remote_memberships.put_remote_membership(
        conn,
        room_id=ROOM,
        user_id=user_id,
        membership="knock",
        event_id=event_id,
        room_version=version,
        stripped_state=KNOCK_STATE,
        server="other.example",
    )


def test_stored_invite_reads_back_and_a_newer_one_replaces_it(conn: sqlite3.Connection) -> None:
    assert remote_memberships.get_remote_membership(conn, ROOM, ALICE) is None
    assert remote_memberships.remote_room_version(conn, ROOM) is None
    with db.write(conn):
        _invite(conn, ALICE, "$first")
    assert remote_memberships.get_remote_membership(
        conn, ROOM, ALICE
    ) == remote_memberships.RemoteMembership("invite", "$first", "11", None, INVITE_STATE)
    assert remote_memberships.remote_room_version(conn, ROOM) == "11"
    with db.write(conn):
        _invite(conn, ALICE, "$second", version="12")
    stored = remote_memberships.get_remote_membership(conn, ROOM, ALICE)
    assert stored is not None and stored.event_id == "$second"
    assert remote_memberships.remote_room_version(conn, ROOM) == "12"


def test_stored_knock_keeps_the_server_it_went_through(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        _knock(conn, ALICE, "$knock")
    assert remote_memberships.get_remote_membership(
        conn, ROOM, ALICE
    ) == remote_memberships.RemoteMembership("knock", "$knock", "10", "other.example", KNOCK_STATE)
    assert remote_memberships.remote_room_version(conn, ROOM) == "10"


def test_an_invite_answering_a_knock_replaces_it(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        _knock(conn, ALICE, "$knock")
        _invite(conn, ALICE, "$invite")
    assert remote_memberships.get_remote_membership(
        conn, ROOM, ALICE
    ) == remote_memberships.RemoteMembership("invite", "$invite", "11", None, INVITE_STATE)


def test_stripped_state_that_is_not_a_list_reads_as_empty(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        remote_memberships.put_remote_membership(
            conn,
            room_id=ROOM,
            user_id=ALICE,
            membership="invite",
            event_id="$i",
            room_version="11",
            stripped_state={"not": "a list"},  # type: ignore[arg-type]
        )
    stored = remote_memberships.get_remote_membership(conn, ROOM, ALICE)
    assert stored is not None and stored.stripped_state == []


def test_a_membership_other_than_invite_or_knock_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError), db.write(conn):
        remote_memberships.put_remote_membership(
            conn,
            room_id=ROOM,
            user_id=ALICE,
            membership="join",  # type: ignore[arg-type]
            event_id="$j",
            room_version="11",
            stripped_state=[],
        )
    assert remote_memberships.get_remote_membership(conn, ROOM, ALICE) is None


def test_leaving_drops_one_membership_joining_drops_all(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        _invite(conn, ALICE, "$a")
        _knock(conn, BOB, "$b")
        remote_memberships.delete_remote_membership(conn, ROOM, ALICE)
    assert remote_memberships.get_remote_membership(conn, ROOM, ALICE) is None
    assert remote_memberships.get_remote_membership(conn, ROOM, BOB) is not None
    with db.write(conn):
        _invite(conn, ALICE, "$a")
        remote_memberships.delete_remote_memberships_in_room(conn, ROOM)
    assert remote_memberships.get_remote_membership(conn, ROOM, ALICE) is None
    assert remote_memberships.get_remote_membership(conn, ROOM, BOB) is None
    assert remote_memberships.remote_room_version(conn, ROOM) is None


# -- the migration ------------------------------------------------------------------------

CAROL = "@carol:kit.example"
DAVE = "@dave:kit.example"


def _old_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    """A row of a table the migration replaces (no store function writes those any more)."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values()))


def _old_invite(conn: sqlite3.Connection, room_id: str, user_id: str, event_id: str) -> None:
    state = [{"type": "m.room.name", "state_key": "", "content": {"name": f"{room_id} name"}}]
    _old_row(
        conn,
        "remote_invites",
        {
            "room_id": room_id,
            "user_id": user_id,
            "event_id": event_id,
            "room_version": "11",
            "invite_state": json.dumps(state),
        },
    )


def _old_knock(conn: sqlite3.Connection, room_id: str, user_id: str, event_id: str) -> None:
    state = [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]
    _old_row(
        conn,
        "remote_knocks",
        {
            "room_id": room_id,
            "user_id": user_id,
            "event_id": event_id,
            "room_version": "10",
            "server": "knocked-through.example",
            "knock_state": json.dumps(state),
        },
    )


def _current(
    conn: sqlite3.Connection, room_id: str, user_id: str, membership: str, eid: str
) -> None:
    rooms.set_membership(
        conn,
        room_id=room_id,
        user_id=user_id,
        membership=membership,
        event_id=eid,
        stream_ordering=1,
    )


def test_the_migration_moves_invites_and_knocks_stored_before_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = db.migrations()
    [number] = [n for n, name, _ in steps if name.endswith("_remote_memberships.sql")]
    monkeypatch.setattr(db, "migrations", lambda: [s for s in steps if s[0] < number])
    conn = db.open_database(db_path)
    monkeypatch.undo()
    try:
        assert db.schema_version(conn) == number - 1
        with db.write(conn):
            _old_invite(conn, "!a:far.example", ALICE, "$alice-invite")
            _old_invite(conn, "!a:far.example", BOB, "$bob-invite")
            _old_knock(conn, "!b:far.example", ALICE, "$alice-knock")
            # Carol knocked, then was invited: the invite stands.
            _old_knock(conn, "!c:far.example", CAROL, "$carol-knock")
            _old_invite(conn, "!c:far.example", CAROL, "$carol-invite")
            _current(conn, "!c:far.example", CAROL, "invite", "$carol-invite")
            # Dave's current membership says his knock is the newer: the knock stands.
            _old_invite(conn, "!d:far.example", DAVE, "$dave-invite")
            _old_knock(conn, "!d:far.example", DAVE, "$dave-knock")
            _current(conn, "!d:far.example", DAVE, "knock", "$dave-knock")
        assert db.migrate(conn) == db.known_schema_version()

        def read(room_id: str, user_id: str) -> remote_memberships.RemoteMembership | None:
            return remote_memberships.get_remote_membership(conn, room_id, user_id)

        named_a = [
            {"type": "m.room.name", "state_key": "", "content": {"name": "!a:far.example name"}}
        ]
        knock_state = [
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
        ]
        Row = remote_memberships.RemoteMembership
        assert read("!a:far.example", ALICE) == Row("invite", "$alice-invite", "11", None, named_a)
        assert read("!a:far.example", BOB) == Row("invite", "$bob-invite", "11", None, named_a)
        assert read("!b:far.example", ALICE) == Row(
            "knock", "$alice-knock", "10", "knocked-through.example", knock_state
        )
        carol = read("!c:far.example", CAROL)
        assert carol is not None and carol.event_id == "$carol-invite"
        dave = read("!d:far.example", DAVE)
        assert dave is not None and (dave.event_id, dave.server) == (
            "$dave-knock",
            "knocked-through.example",
        )
        assert remote_memberships.remote_room_version(conn, "!b:far.example") == "10"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert not tables & {"remote_invites", "remote_knocks"}
    finally:
        conn.close()
