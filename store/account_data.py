"""Per-user data a client stores on the server: account data and sync filters
(tables ``account_data``, ``filters``).

Rules kept:

- Global account data has ``room_id`` ``''``; per-room data names its room.
  https://spec.matrix.org/v1.16/client-server-api/#client-config
- Account data is positioned on the shared stream (``events.next_stream_ordering``),
  so one integer sync token covers it; a write replaces the old content and moves it
  to the new position.
- Content and filters are JSON text the caller validated; the store doesn't parse it.
- Filter ids are per user, allocated 0, 1, 2, … and returned as strings.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "account_data_since",
    "get_account_data",
    "get_filter",
    "put_filter",
    "set_account_data",
]


def set_account_data(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    room_id: str = "",
    type: str,
    content: str,
    stream_ordering: int,
) -> None:
    """Store ``content`` (JSON text) as the user's ``type`` account data."""
    conn.execute(
        "INSERT INTO account_data (user_id, room_id, type, content, stream_ordering)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, room_id, type) DO UPDATE SET"
        " content = excluded.content, stream_ordering = excluded.stream_ordering",
        (user_id, room_id, type, content, stream_ordering),
    )


def get_account_data(
    conn: sqlite3.Connection, user_id: str, type: str, room_id: str = ""
) -> str | None:
    """The JSON text stored for ``type``, or None."""
    row = conn.execute(
        "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
        (user_id, room_id, type),
    ).fetchone()
    return row[0] if row is not None else None


def account_data_since(conn: sqlite3.Connection, user_id: str, since: int) -> list[dict[str, Any]]:
    """The user's account data written after stream position ``since``, in stream
    order; each item: room_id ('' = global), type, content, stream_ordering."""
    rows = conn.execute(
        "SELECT room_id, type, content, stream_ordering FROM account_data"
        " WHERE user_id = ? AND stream_ordering > ? ORDER BY stream_ordering",
        (user_id, since),
    )
    return [dict(row) for row in rows]


def put_filter(conn: sqlite3.Connection, user_id: str, filter_json: str) -> str:
    """Store a filter definition; returns its new id."""
    row = conn.execute(
        "SELECT coalesce(max(filter_id) + 1, 0) FROM filters WHERE user_id = ?", (user_id,)
    ).fetchone()
    filter_id = int(row[0])
    conn.execute(
        "INSERT INTO filters (user_id, filter_id, json) VALUES (?, ?, ?)",
        (user_id, filter_id, filter_json),
    )
    return str(filter_id)


def get_filter(conn: sqlite3.Connection, user_id: str, filter_id: str) -> str | None:
    """The filter's JSON text, or None (also for ids that aren't integers)."""
    # isdigit() alone accepts "²", which int() refuses; SQLite integers are 64-bit.
    if not (filter_id.isascii() and filter_id.isdigit()) or len(filter_id) > 18:
        return None
    row = conn.execute(
        "SELECT json FROM filters WHERE user_id = ? AND filter_id = ?", (user_id, int(filter_id))
    ).fetchone()
    return row[0] if row is not None else None
