"""store.rooms: room rows, aliases, memberships and the servers in a room."""

from __future__ import annotations

import sqlite3

import pytest

from store import db, rooms
from store.errors import AliasExists, RoomExists

ROOM = "!room:kit.example"


def test_create_room_and_read_it_back(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        rooms.create_room(conn, room_id=ROOM, room_version="11", creator="@a:kit.example", now_ms=7)
    assert rooms.get_room_version(conn, ROOM) == "11"
    assert rooms.get_room_version(conn, "!nope:k") is None
    assert rooms.get_room(conn, ROOM) == {
        "room_id": ROOM,
        "room_version": "11",
        "creator": "@a:kit.example",
        "is_public": False,
        "created_ts": 7,
    }
    assert rooms.count_rooms(conn) == 1
    with pytest.raises(RoomExists), db.write(conn):
        rooms.create_room(conn, room_id=ROOM, room_version="10", creator=None, now_ms=8)
    assert rooms.get_room_version(conn, ROOM) == "11"


def test_public_rooms(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        rooms.create_room(conn, room_id="!b:k", room_version="11", creator=None, now_ms=1)
        rooms.create_room(
            conn, room_id="!a:k", room_version="11", creator=None, is_public=True, now_ms=1
        )
        assert rooms.set_room_public(conn, "!b:k", True)
        assert not rooms.set_room_public(conn, "!c:k", True)
    assert rooms.public_room_ids(conn) == ["!a:k", "!b:k"]
    assert rooms.all_room_ids(conn) == ["!a:k", "!b:k"]


def test_aliases(conn: sqlite3.Connection) -> None:
    with db.write(conn):
        rooms.create_alias(
            conn,
            alias="#ops:kit.example",
            room_id=ROOM,
            servers=["kit.example", "up.example"],
            creator="@a:kit.example",
        )
        rooms.create_alias(conn, alias="#base:kit.example", room_id=ROOM, servers=[])
    assert rooms.get_alias(conn, "#ops:kit.example") == (ROOM, ["kit.example", "up.example"])
    assert rooms.get_alias(conn, "#nope:kit.example") is None
    assert rooms.get_alias_creator(conn, "#ops:kit.example") == "@a:kit.example"
    assert rooms.aliases_for_room(conn, ROOM) == ["#base:kit.example", "#ops:kit.example"]
    with pytest.raises(AliasExists), db.write(conn):
        rooms.create_alias(conn, alias="#ops:kit.example", room_id="!x:k", servers=[])
    with db.write(conn):
        assert rooms.delete_alias(conn, "#ops:kit.example")
        assert not rooms.delete_alias(conn, "#ops:kit.example")
    assert rooms.aliases_for_room(conn, ROOM) == ["#base:kit.example"]


def _member(conn: sqlite3.Connection, room_id: str, user_id: str, membership: str, n: int) -> None:
    with db.write(conn):
        rooms.set_membership(
            conn,
            room_id=room_id,
            user_id=user_id,
            membership=membership,
            event_id=f"$m{n}",
            stream_ordering=n,
        )


def test_memberships_and_servers_in_room(conn: sqlite3.Connection) -> None:
    _member(conn, ROOM, "@a:kit.example", "join", 1)
    _member(conn, ROOM, "@b:up.example", "join", 2)
    _member(conn, ROOM, "@c:127.0.0.2:8448", "join", 3)
    _member(conn, ROOM, "@d:other.example", "invite", 4)
    _member(conn, ROOM, "@e:gone.example", "join", 5)
    _member(conn, ROOM, "@e:gone.example", "leave", 6)
    _member(conn, "!other:k", "@a:kit.example", "invite", 7)

    assert rooms.get_membership(conn, ROOM, "@e:gone.example") == "leave"
    assert rooms.get_membership(conn, ROOM, "@z:kit.example") is None
    assert rooms.joined_users(conn, ROOM) == [
        "@a:kit.example",
        "@b:up.example",
        "@c:127.0.0.2:8448",
    ]
    assert rooms.servers_in_room(conn, ROOM) == ["127.0.0.2:8448", "kit.example", "up.example"]
    assert rooms.rooms_for_user(conn, "@a:kit.example") == [ROOM]
    assert rooms.rooms_for_user(conn, "@a:kit.example", "invite") == ["!other:k"]
    assert rooms.members(conn, ROOM, "invite") == {"@d:other.example": "invite"}
    assert len(rooms.members(conn, ROOM)) == 5
