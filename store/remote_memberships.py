"""Our users' memberships in rooms on other servers that we are not in (table
``remote_memberships``): an invite another server sent, a knock we sent.

Rules kept:

- One row per ``(room_id, user_id)``, as a user has one membership in a room: ``invite``
  or ``knock``, the membership event we stored (as an outlier), the room's version (we
  hold no create event to read it from), the server a knock went through (None for an
  invite: its sender's server is asked) and the stripped state that came with it
  (``invite_room_state`` or ``knock_room_state``: a JSON list; the store keeps it as given).
- A newer membership replaces the row (an invite answering a knock replaces the knock);
  joining the room drops every row of it; rejecting the invite or rescinding the knock
  drops that user's.
- Functions take the connection first and never commit (see ``store.db``).

Spec: https://spec.matrix.org/v1.16/server-server-api/#inviting-to-a-room,
https://spec.matrix.org/v1.16/server-server-api/#knocking-upon-a-room
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "RemoteMembership",
    "delete_remote_membership",
    "delete_remote_memberships_in_room",
    "get_remote_membership",
    "put_remote_membership",
    "remote_room_version",
]

#: The memberships a user holds in a room we are not in.
Membership = Literal["invite", "knock"]


@dataclass(frozen=True, slots=True)
class RemoteMembership:
    """A user's stored membership in a room we are not in."""

    membership: Membership
    event_id: str
    room_version: str
    #: The server the knock went through (None for an invite).
    server: str | None
    #: The stripped state that came with the invite or answered the knock ([] if not a list).
    stripped_state: list[Any]


def put_remote_membership(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    user_id: str,
    membership: Membership,
    event_id: str,
    room_version: str,
    stripped_state: list[Any],
    server: str | None = None,
) -> None:
    """Remember ``user_id``'s invite to or knock on ``room_id`` (replacing what was stored)."""
    conn.execute(
        "INSERT INTO remote_memberships"
        " (room_id, user_id, membership, event_id, room_version, server, stripped_state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id) DO UPDATE"
        " SET membership = excluded.membership, event_id = excluded.event_id,"
        " room_version = excluded.room_version, server = excluded.server,"
        " stripped_state = excluded.stripped_state",
        (
            room_id,
            user_id,
            membership,
            event_id,
            room_version,
            server,
            json.dumps(stripped_state),
        ),
    )


def get_remote_membership(
    conn: sqlite3.Connection, room_id: str, user_id: str
) -> RemoteMembership | None:
    """The user's stored invite to or knock on the room, or None."""
    row = conn.execute(
        "SELECT membership, event_id, room_version, server, stripped_state"
        " FROM remote_memberships WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    ).fetchone()
    if row is None:
        return None
    state = json.loads(row[4])
    return RemoteMembership(
        membership=row[0],
        event_id=row[1],
        room_version=row[2],
        server=row[3],
        stripped_state=state if isinstance(state, list) else [],
    )


def remote_room_version(conn: sqlite3.Connection, room_id: str) -> str | None:
    """The room version any stored invite to or knock on the room names, or None."""
    row = conn.execute(
        "SELECT room_version FROM remote_memberships WHERE room_id = ? LIMIT 1", (room_id,)
    ).fetchone()
    return row[0] if row is not None else None


def delete_remote_membership(conn: sqlite3.Connection, room_id: str, user_id: str) -> None:
    """Forget the user's invite to or knock on the room (none stored: no-op)."""
    conn.execute(
        "DELETE FROM remote_memberships WHERE room_id = ? AND user_id = ?", (room_id, user_id)
    )


def delete_remote_memberships_in_room(conn: sqlite3.Connection, room_id: str) -> None:
    """Forget every invite to and knock on the room (we are in it now)."""
    conn.execute("DELETE FROM remote_memberships WHERE room_id = ?", (room_id,))
