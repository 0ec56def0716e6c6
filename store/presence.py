"""Presence (table ``presence``).

Rules kept:

- One row per user: the state they (or their syncing clients) last set, an optional
  status message, and when they were last active.
  https://spec.matrix.org/v1.16/client-server-api/#presence
- A change is positioned on the shared stream (``events.next_stream_ordering``), so
  one integer sync token covers presence too.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from store.batches import id_batches

__all__ = ["get_presence", "presence_since", "set_presence"]


def set_presence(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    state: str,
    status_msg: str | None,
    last_active_ts: int,
    stream_ordering: int,
) -> None:
    """Store the user's presence, replacing the previous row."""
    conn.execute(
        "INSERT INTO presence (user_id, state, status_msg, last_active_ts, stream_ordering)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " state = excluded.state, status_msg = excluded.status_msg,"
        " last_active_ts = excluded.last_active_ts, stream_ordering = excluded.stream_ordering",
        (user_id, state, status_msg, last_active_ts, stream_ordering),
    )


def get_presence(conn: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    """The user's row (user_id, state, status_msg, last_active_ts, stream_ordering)."""
    row = conn.execute("SELECT * FROM presence WHERE user_id = ?", (user_id,)).fetchone()
    return dict(row) if row is not None else None


def presence_since(
    conn: sqlite3.Connection, user_ids: Iterable[str] | None, since: int
) -> list[dict[str, Any]]:
    """Rows of ``user_ids`` (None: anyone's, by the stream index) changed after stream
    position ``since``, in stream order."""
    if user_ids is None:
        rows = conn.execute(
            "SELECT * FROM presence WHERE stream_ordering > ? ORDER BY stream_ordering", (since,)
        )
        return [dict(row) for row in rows]
    found: list[dict[str, Any]] = []
    for chunk in id_batches(user_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT * FROM presence WHERE user_id IN ({marks}) AND stream_ordering > ?",
            (*chunk, since),
        )
        found.extend(dict(row) for row in rows)
    found.sort(key=lambda row: row["stream_ordering"])
    return found
