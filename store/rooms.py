"""Rooms, their aliases, and memberships (tables ``rooms``, ``room_aliases``,
``room_memberships``).

Rules kept:

- ``room_memberships`` is derived data: the caller updates it in the same write
  transaction that changes an ``m.room.member`` entry of the current state, so the two
  never disagree after a commit.
- A server name is the part of a user_id after the first ``:`` (it may carry a port,
  ``@a:127.0.0.2:8448``); ``servers_in_room`` derives the room's servers from joined
  members. https://spec.matrix.org/v1.16/appendices/#user-identifiers
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from store.errors import AliasExists, RoomExists

__all__ = [
    "AliasExists",
    "RoomExists",
    "aliases_for_room",
    "all_room_ids",
    "count_rooms",
    "create_alias",
    "create_room",
    "delete_alias",
    "forget_room",
    "forgotten_rooms",
    "get_alias",
    "get_alias_creator",
    "get_membership",
    "get_membership_event",
    "get_room",
    "get_room_version",
    "joined_users",
    "members",
    "memberships_of_user",
    "public_room_ids",
    "rooms_for_user",
    "server_was_ever_in_room",
    "servers_in_room",
    "set_membership",
    "set_room_public",
    "shares_a_room",
    "users_sharing_rooms",
]


# Rooms ---------------------------------------------------------------------------------


def create_room(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    room_version: str,
    creator: str | None,
    is_public: bool = False,
    now_ms: int,
) -> None:
    """Record a room we create or join.

    Raises:
        RoomExists: the room_id is already stored.
    """
    try:
        conn.execute(
            "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (room_id, room_version, creator, int(is_public), now_ms),
        )
    except sqlite3.IntegrityError as exc:
        raise RoomExists(room_id) from exc


def get_room(conn: sqlite3.Connection, room_id: str) -> dict[str, Any] | None:
    """The room row (room_id, room_version, creator, is_public as bool, created_ts)."""
    row = conn.execute("SELECT * FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
    if row is None:
        return None
    room = dict(row)
    room["is_public"] = bool(room["is_public"])
    return room


def get_room_version(conn: sqlite3.Connection, room_id: str) -> str | None:
    """The room's version identifier ("10", "11", ...), or None if unknown."""
    row = conn.execute("SELECT room_version FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
    return row[0] if row is not None else None


def set_room_public(conn: sqlite3.Connection, room_id: str, is_public: bool) -> bool:
    """Publish the room in (or remove it from) the room directory; False if unknown."""
    cur = conn.execute(
        "UPDATE rooms SET is_public = ? WHERE room_id = ?", (int(is_public), room_id)
    )
    return cur.rowcount > 0


def public_room_ids(conn: sqlite3.Connection) -> list[str]:
    """Rooms published in the directory, sorted."""
    rows = conn.execute("SELECT room_id FROM rooms WHERE is_public = 1 ORDER BY room_id")
    return [row[0] for row in rows]


def all_room_ids(conn: sqlite3.Connection) -> list[str]:
    """Every room we have a row for, sorted."""
    return [row[0] for row in conn.execute("SELECT room_id FROM rooms ORDER BY room_id")]


def count_rooms(conn: sqlite3.Connection) -> int:
    """Number of rooms we have a row for."""
    return int(conn.execute("SELECT count(*) FROM rooms").fetchone()[0])


# Aliases -------------------------------------------------------------------------------


def create_alias(
    conn: sqlite3.Connection,
    *,
    alias: str,
    room_id: str,
    servers: Sequence[str],
    creator: str | None = None,
) -> None:
    """Point ``alias`` at ``room_id``; ``servers`` are the ones to join through.

    Raises:
        AliasExists: the alias is taken.
    """
    try:
        conn.execute(
            "INSERT INTO room_aliases (alias, room_id, servers, creator) VALUES (?, ?, ?, ?)",
            (alias, room_id, json.dumps(list(servers)), creator),
        )
    except sqlite3.IntegrityError as exc:
        raise AliasExists(alias) from exc


def get_alias(conn: sqlite3.Connection, alias: str) -> tuple[str, list[str]] | None:
    """``(room_id, servers)`` for the alias, or None."""
    row = conn.execute(
        "SELECT room_id, servers FROM room_aliases WHERE alias = ?", (alias,)
    ).fetchone()
    return (row[0], list(json.loads(row[1]))) if row is not None else None


def get_alias_creator(conn: sqlite3.Connection, alias: str) -> str | None:
    """Who created the alias (may delete it), or None if unknown/not recorded."""
    row = conn.execute("SELECT creator FROM room_aliases WHERE alias = ?", (alias,)).fetchone()
    return row[0] if row is not None else None


def delete_alias(conn: sqlite3.Connection, alias: str) -> bool:
    """Remove the alias; False if it did not exist."""
    return conn.execute("DELETE FROM room_aliases WHERE alias = ?", (alias,)).rowcount > 0


def aliases_for_room(conn: sqlite3.Connection, room_id: str) -> list[str]:
    """The room's local aliases, sorted."""
    rows = conn.execute(
        "SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", (room_id,)
    )
    return [row[0] for row in rows]


# Memberships ---------------------------------------------------------------------------


def set_membership(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    user_id: str,
    membership: str,
    event_id: str,
    stream_ordering: int,
) -> None:
    """Record the user's current membership ("join", "invite", "leave", "ban", "knock")."""
    conn.execute(
        "INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream_ordering)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id) DO UPDATE SET"
        " membership = excluded.membership, event_id = excluded.event_id,"
        " stream_ordering = excluded.stream_ordering",
        (room_id, user_id, membership, event_id, stream_ordering),
    )


def get_membership(conn: sqlite3.Connection, room_id: str, user_id: str) -> str | None:
    """The user's current membership in the room, or None if never a member."""
    row = conn.execute(
        "SELECT membership FROM room_memberships WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    ).fetchone()
    return row[0] if row is not None else None


def get_membership_event(
    conn: sqlite3.Connection, room_id: str, user_id: str
) -> tuple[str, str, int] | None:
    """``(membership, event_id, stream_ordering)`` of the user's current membership."""
    row = conn.execute(
        "SELECT membership, event_id, stream_ordering FROM room_memberships"
        " WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    ).fetchone()
    return (row[0], row[1], int(row[2])) if row is not None else None


def rooms_for_user(conn: sqlite3.Connection, user_id: str, membership: str = "join") -> list[str]:
    """Rooms where the user's membership is ``membership``, sorted."""
    rows = conn.execute(
        "SELECT room_id FROM room_memberships WHERE user_id = ? AND membership = ?"
        " ORDER BY room_id",
        (user_id, membership),
    )
    return [row[0] for row in rows]


def members(
    conn: sqlite3.Connection, room_id: str, membership: str | None = None
) -> dict[str, str]:
    """``{user_id: membership}`` for the room, optionally only one membership."""
    if membership is None:
        rows = conn.execute(
            "SELECT user_id, membership FROM room_memberships WHERE room_id = ?", (room_id,)
        )
    else:
        rows = conn.execute(
            "SELECT user_id, membership FROM room_memberships WHERE room_id = ? AND membership = ?",
            (room_id, membership),
        )
    return {row[0]: row[1] for row in rows}


def joined_users(conn: sqlite3.Connection, room_id: str) -> list[str]:
    """Users joined to the room, sorted."""
    return sorted(members(conn, room_id, "join"))


def servers_in_room(conn: sqlite3.Connection, room_id: str) -> list[str]:
    """Servers with at least one joined user in the room, sorted."""
    rows = conn.execute(
        "SELECT DISTINCT substr(user_id, instr(user_id, ':') + 1) AS server"
        " FROM room_memberships WHERE room_id = ? AND membership = 'join'"
        " AND instr(user_id, ':') > 0 ORDER BY server",
        (room_id,),
    )
    return [row[0] for row in rows]


def shares_a_room(conn: sqlite3.Connection, server_name: str, others: list[str]) -> bool:
    """Whether a user of ``server_name`` and a user of one of ``others`` are joined to one
    room (as far as our copy of the room's state says)."""
    if not others:
        return False
    server = "substr({0}.user_id, instr({0}.user_id, ':') + 1)"
    marks = ", ".join("?" * len(others))
    row = conn.execute(
        "SELECT 1 FROM room_memberships AS theirs"
        " JOIN room_memberships AS base ON base.room_id = theirs.room_id"
        " WHERE theirs.membership = 'join' AND base.membership = 'join'"
        f" AND {server.format('theirs')} = ? AND {server.format('base')} IN ({marks})"
        " LIMIT 1",
        (server_name, *others),
    ).fetchone()
    return row is not None


def memberships_of_user(
    conn: sqlite3.Connection, user_id: str, since: int = -1
) -> list[dict[str, Any]]:
    """The user's current membership rows (room_id, membership, event_id,
    stream_ordering) changed after stream position ``since``, in stream order."""
    rows = conn.execute(
        "SELECT room_id, membership, event_id, stream_ordering FROM room_memberships"
        " WHERE user_id = ? AND stream_ordering > ? ORDER BY stream_ordering",
        (user_id, since),
    )
    return [dict(row) for row in rows]


def server_was_ever_in_room(conn: sqlite3.Connection, room_id: str, server: str) -> bool:
    """True if a user of ``server`` has or had any membership in the room: a membership
    row, or an accepted ``m.room.member`` event about them (outliers included)."""
    row = conn.execute(
        "SELECT 1 FROM room_memberships WHERE room_id = ? AND user_id LIKE ? LIMIT 1",
        (room_id, f"%:{server}"),
    ).fetchone()
    if row is not None:
        return True
    row = conn.execute(
        "SELECT 1 FROM events WHERE room_id = ? AND type = 'm.room.member'"
        " AND state_key LIKE ? AND rejected_reason IS NULL LIMIT 1",
        (room_id, f"%:{server}"),
    ).fetchone()
    return row is not None


def forget_room(conn: sqlite3.Connection, user_id: str, room_id: str) -> None:
    """The user asked to forget the room (again: no-op)."""
    conn.execute(
        "INSERT OR IGNORE INTO forgotten_rooms (user_id, room_id) VALUES (?, ?)",
        (user_id, room_id),
    )


def forgotten_rooms(conn: sqlite3.Connection, user_id: str) -> set[str]:
    """Rooms the user asked to forget (table ``forgotten_rooms``)."""
    rows = conn.execute("SELECT room_id FROM forgotten_rooms WHERE user_id = ?", (user_id,))
    return {row[0] for row in rows}


def users_sharing_rooms(conn: sqlite3.Connection, user_id: str) -> list[str]:
    """Users joined to a room the user is joined to (the user included), sorted."""
    rows = conn.execute(
        "SELECT DISTINCT other.user_id FROM room_memberships mine"
        " JOIN room_memberships other ON other.room_id = mine.room_id"
        " WHERE mine.user_id = ? AND mine.membership = 'join' AND other.membership = 'join'"
        " ORDER BY other.user_id",
        (user_id,),
    )
    return [row[0] for row in rows]


def move_aliases(conn: sqlite3.Connection, from_room: str, to_room: str) -> list[str]:
    """Point every alias of ``from_room`` at ``to_room`` (a room upgrade); the aliases
    moved, sorted."""
    moved = aliases_for_room(conn, from_room)
    conn.execute("UPDATE room_aliases SET room_id = ? WHERE room_id = ?", (to_room, from_room))
    return moved


def first_members(conn: sqlite3.Connection, room_id: str, limit: int) -> list[tuple[str, str]]:
    """Up to ``limit`` ``(user_id, membership)`` of the room: the joined members first,
    then the invited, then those who left, then the rest (bans, knocks), each in the
    order their membership was set (the room summary's heroes, as Synapse picks them)."""
    rows = conn.execute(
        "SELECT user_id, membership FROM room_memberships WHERE room_id = ?"
        " ORDER BY CASE membership WHEN 'join' THEN 1 WHEN 'invite' THEN 2"
        " WHEN 'leave' THEN 3 ELSE 4 END, stream_ordering LIMIT ?",
        (room_id, limit),
    )
    return [(row[0], row[1]) for row in rows]
