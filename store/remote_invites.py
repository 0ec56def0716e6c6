"""Invites to rooms on other servers that we are not in (table ``remote_invites``).

Rules kept:

- One row per ``(room_id, user_id)``: the invite event we stored (as an outlier), the
  room's version (we hold no create event to read it from) and the stripped state the
  inviting server sent with it (a JSON list; the store keeps it as given).
- A newer invite to the same user replaces the row; joining the room drops every invite
  to it, rejecting one drops that one.
- Functions take the connection first and never commit (see ``store.db``).

Spec: https://spec.matrix.org/v1.16/server-server-api/#inviting-to-a-room
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

__all__ = [
    "delete_invite",
    "delete_invites_to_room",
    "invite_event_id",
    "invite_state",
    "invited_room_version",
    "put_invite",
]


def put_invite(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    user_id: str,
    event_id: str,
    room_version: str,
    invite_state: list[Any],
) -> None:
    """Remember the invite of ``user_id`` to ``room_id`` (replacing an earlier one)."""
    conn.execute(
        "INSERT INTO remote_invites (room_id, user_id, event_id, room_version, invite_state)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id) DO UPDATE"
        " SET event_id = excluded.event_id, room_version = excluded.room_version,"
        " invite_state = excluded.invite_state",
        (room_id, user_id, event_id, room_version, json.dumps(invite_state)),
    )


def invite_event_id(conn: sqlite3.Connection, room_id: str, user_id: str) -> str | None:
    """The event id of the user's stored invite to the room, or None."""
    row = conn.execute(
        "SELECT event_id FROM remote_invites WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    ).fetchone()
    return row[0] if row is not None else None


def invite_state(conn: sqlite3.Connection, room_id: str, user_id: str) -> list[Any]:
    """The stripped state sent with the user's invite to the room ([] if none)."""
    row = conn.execute(
        "SELECT invite_state FROM remote_invites WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    ).fetchone()
    if row is None:
        return []
    state = json.loads(row[0])
    return state if isinstance(state, list) else []


def invited_room_version(conn: sqlite3.Connection, room_id: str) -> str | None:
    """The room version any stored invite to the room names, or None."""
    row = conn.execute(
        "SELECT room_version FROM remote_invites WHERE room_id = ? LIMIT 1", (room_id,)
    ).fetchone()
    return row[0] if row is not None else None


def delete_invite(conn: sqlite3.Connection, room_id: str, user_id: str) -> None:
    """Forget the user's invite to the room (none stored: no-op)."""
    conn.execute("DELETE FROM remote_invites WHERE room_id = ? AND user_id = ?", (room_id, user_id))


def delete_invites_to_room(conn: sqlite3.Connection, room_id: str) -> None:
    """Forget every invite to the room (we are in it now)."""
    conn.execute("DELETE FROM remote_invites WHERE room_id = ?", (room_id,))
