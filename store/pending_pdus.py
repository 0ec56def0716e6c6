"""PDUs kept until the key that signed them can be found (table ``pending_pdus``).

Rules kept:

- A row is a PDU some server pushed to us, whole (the JSON as received), with the server
  whose key was missing (``key_server``); it is not part of any room until it is received
  again and accepted. The store checks nothing: the caller verified the PDU parses.
- One row per event id: keeping a PDU again is a no-op.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "count_pending_pdus",
    "delete_pending_pdu",
    "get_pending_pdus",
    "pending_key_servers",
    "prune_pending_pdus",
    "put_pending_pdu",
]


def put_pending_pdu(
    conn: sqlite3.Connection,
    *,
    event_id: str,
    origin: str,
    room_id: str,
    key_server: str,
    pdu_json: str,
    now_ms: int,
) -> bool:
    """Keep a PDU unless it is kept already; returns whether it was new."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO pending_pdus"
        " (event_id, origin, room_id, key_server, pdu_json, received_ts)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (event_id, origin, room_id, key_server, pdu_json, now_ms),
    )
    return cur.rowcount > 0


def get_pending_pdus(
    conn: sqlite3.Connection, *, key_server: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Kept PDUs (all, or those waiting for ``key_server``'s key), oldest first: rows of
    event_id, origin, room_id, key_server, pdu_json, received_ts."""
    if key_server is None:
        rows = conn.execute(
            "SELECT * FROM pending_pdus ORDER BY received_ts, event_id LIMIT ?", (limit,)
        )
    else:
        rows = conn.execute(
            "SELECT * FROM pending_pdus WHERE key_server = ?"
            " ORDER BY received_ts, event_id LIMIT ?",
            (key_server, limit),
        )
    return [dict(row) for row in rows]


def delete_pending_pdu(conn: sqlite3.Connection, event_id: str) -> None:
    """Forget a kept PDU (it was received again, whatever became of it)."""
    conn.execute("DELETE FROM pending_pdus WHERE event_id = ?", (event_id,))


def count_pending_pdus(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM pending_pdus").fetchone()[0]


def prune_pending_pdus(conn: sqlite3.Connection, *, older_than_ms: int) -> int:
    """Forget PDUs kept since before ``older_than_ms``; returns how many."""
    return conn.execute("DELETE FROM pending_pdus WHERE received_ts < ?", (older_than_ms,)).rowcount


def pending_key_servers(conn: sqlite3.Connection) -> list[str]:
    """The servers whose keys kept PDUs wait for."""
    return [r[0] for r in conn.execute("SELECT DISTINCT key_server FROM pending_pdus ORDER BY 1")]
