"""Knocks of our users on rooms on other servers that we are not in (table
``remote_knocks``).

Rules kept:

- One row per ``(room_id, user_id)``: the knock event we stored (as an outlier), the
  room's version (we hold no create event to read it from), the server the knock went
  through and the stripped state it answered (a JSON list; the store keeps it as given).
- A newer knock replaces the row; joining the room drops every knock on it, rescinding
  one drops that one.
- Functions take the connection first and never commit (see ``store.db``).

Spec: https://spec.matrix.org/v1.16/server-server-api/#knocking-upon-a-room
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

__all__ = [
    "delete_knock",
    "delete_knocks_on_room",
    "knock_server",
    "knock_state",
    "knocked_room_version",
    "put_knock",
]


def put_knock(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    user_id: str,
    event_id: str,
    room_version: str,
    server: str,
    knock_state: list[Any],
) -> None:
    """Remember the knock of ``user_id`` on ``room_id`` (replacing an earlier one)."""
    conn.execute(
        "INSERT INTO remote_knocks"
        " (room_id, user_id, event_id, room_version, server, knock_state)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id) DO UPDATE"
        " SET event_id = excluded.event_id, room_version = excluded.room_version,"
        " server = excluded.server, knock_state = excluded.knock_state",
        (room_id, user_id, event_id, room_version, server, json.dumps(knock_state)),
    )


def knock_state(conn: sqlite3.Connection, room_id: str, user_id: str) -> list[Any]:
    """The stripped state answered to the user's knock on the room ([] if none)."""
    row = conn.execute(
        "SELECT knock_state FROM remote_knocks WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    ).fetchone()
    if row is None:
        return []
    state = json.loads(row[0])
    return state if isinstance(state, list) else []


def knock_server(conn: sqlite3.Connection, room_id: str, user_id: str) -> str | None:
    """The server the user's knock on the room went through, or None."""
    row = conn.execute(
        "SELECT server FROM remote_knocks WHERE room_id = ? AND user_id = ?", (room_id, user_id)
    ).fetchone()
    return row[0] if row is not None else None


def knocked_room_version(conn: sqlite3.Connection, room_id: str) -> str | None:
    """The room version any stored knock on the room names, or None."""
    row = conn.execute(
        "SELECT room_version FROM remote_knocks WHERE room_id = ? LIMIT 1", (room_id,)
    ).fetchone()
    return row[0] if row is not None else None


def delete_knock(conn: sqlite3.Connection, room_id: str, user_id: str) -> None:
    """Forget the user's knock on the room (none stored: no-op)."""
    conn.execute("DELETE FROM remote_knocks WHERE room_id = ? AND user_id = ?", (room_id, user_id))


def delete_knocks_on_room(conn: sqlite3.Connection, room_id: str) -> None:
    """Forget every knock on the room (we are in it now)."""
    conn.execute("DELETE FROM remote_knocks WHERE room_id = ?", (room_id,))
