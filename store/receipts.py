"""Read receipts (table ``receipts``). Typing notifications are in memory only.

Rules kept:

- One receipt per ``(room_id, receipt_type, user_id, thread_id)``; ``thread_id`` ``''``
  is the unthreaded receipt. A new receipt replaces the old one.
  https://spec.matrix.org/v1.16/client-server-api/#receipts
- Receipts are positioned on the shared stream (``events.next_stream_ordering``).
- ``data`` is JSON text (e.g. ``{"ts": ...}``) the store doesn't parse.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

__all__ = ["get_receipts", "receipts_since", "rooms_with_receipts_since", "set_receipt"]


def set_receipt(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    receipt_type: str,
    user_id: str,
    event_id: str,
    thread_id: str = "",
    data: str = "{}",
    stream_ordering: int,
) -> None:
    """Store the user's receipt, replacing the previous one of the same kind."""
    conn.execute(
        "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, data,"
        " stream_ordering) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET"
        " event_id = excluded.event_id, data = excluded.data,"
        " stream_ordering = excluded.stream_ordering",
        (room_id, receipt_type, user_id, thread_id, event_id, data, stream_ordering),
    )


def get_receipts(conn: sqlite3.Connection, room_id: str) -> list[dict[str, Any]]:
    """Every receipt in the room; each item: room_id, receipt_type, user_id, thread_id,
    event_id, data, stream_ordering."""
    rows = conn.execute(
        "SELECT * FROM receipts WHERE room_id = ? ORDER BY stream_ordering", (room_id,)
    )
    return [dict(row) for row in rows]


def rooms_with_receipts_since(conn: sqlite3.Connection, since: int) -> set[str]:
    """Rooms with a receipt written after stream position ``since`` (index
    ``receipts_stream_ordering``: costs the receipts since, not the rooms)."""
    rows = conn.execute("SELECT room_id FROM receipts WHERE stream_ordering > ?", (since,))
    return {row[0] for row in rows}


def receipts_since(
    conn: sqlite3.Connection, room_ids: Iterable[str], since: int
) -> list[dict[str, Any]]:
    """Receipts in ``room_ids`` written after stream position ``since``, in stream order."""
    found: list[dict[str, Any]] = []
    for room_id in dict.fromkeys(room_ids):
        rows = conn.execute(
            "SELECT * FROM receipts WHERE room_id = ? AND stream_ordering > ?"
            " ORDER BY stream_ordering",
            (room_id, since),
        )
        found.extend(dict(row) for row in rows)
    found.sort(key=lambda receipt: receipt["stream_ordering"])
    return found
