"""What each sliding sync connection has been sent (table ``sliding_sync_connections``).

Rules kept:

- A connection is ``(user_id, device_id, conn_id)``; each answer that changes what the
  connection holds records a new ``position`` (one more than the newest) with the whole
  state as JSON. Only the ``KEEP`` newest positions of a connection are kept: a client
  retries its last ``pos`` or goes on from the newest, never further back.
- A deleted device's connections go with it (``store.accounts.delete_device``).
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3

__all__ = ["KEEP", "connection_state", "record_connection_state"]

KEEP = 5


def connection_state(
    conn: sqlite3.Connection, user_id: str, device_id: str, conn_id: str, position: int
) -> str | None:
    """The state recorded at ``position`` of the connection, or None."""
    row = conn.execute(
        "SELECT state FROM sliding_sync_connections"
        " WHERE user_id = ? AND device_id = ? AND conn_id = ? AND position = ?",
        (user_id, device_id, conn_id, position),
    ).fetchone()
    return row[0] if row is not None else None


def record_connection_state(
    conn: sqlite3.Connection, user_id: str, device_id: str, conn_id: str, state: str, now_ms: int
) -> int:
    """Record ``state`` at the connection's next position (returned); prune old ones."""
    key = (user_id, device_id, conn_id)
    row = conn.execute(
        "SELECT coalesce(max(position), 0) FROM sliding_sync_connections"
        " WHERE user_id = ? AND device_id = ? AND conn_id = ?",
        key,
    ).fetchone()
    position = int(row[0]) + 1
    conn.execute(
        "INSERT INTO sliding_sync_connections"
        " (user_id, device_id, conn_id, position, state, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
        (*key, position, state, now_ms),
    )
    conn.execute(
        "DELETE FROM sliding_sync_connections"
        " WHERE user_id = ? AND device_id = ? AND conn_id = ? AND position <= ?",
        (*key, position - KEEP),
    )
    return position
