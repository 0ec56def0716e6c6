"""To-device messages waiting for their device (tables ``device_inbox``,
``device_inbox_txns``, ``device_inbox_remote_messages``).

Rules kept:

- Each message takes a position on the main stream (the caller allocates it in the
  same write), so a /sync reads "messages up to `to`" with the token it hands out.
- A message stays until its device syncs with a `since` at or past its position:
  then the device has it (``delete_up_to``). A lost /sync response costs nothing.
- ``device_inbox_txns`` makes ``PUT /sendToDevice/{type}/{txnId}`` idempotent per
  sending device; ``device_inbox_remote_messages`` makes an inbound
  ``m.direct_to_device`` EDU idempotent per origin server and ``message_id``.
- Functions take the connection first and never commit (see ``store.db``).

Spec: https://spec.matrix.org/v1.16/client-server-api/#send-to-device-messaging
"""

from __future__ import annotations

import sqlite3


def add_message(
    conn: sqlite3.Connection, *, stream: int, user_id: str, device_id: str, message_json: str
) -> None:
    conn.execute(
        "INSERT INTO device_inbox (stream, user_id, device_id, message_json) VALUES (?, ?, ?, ?)",
        (stream, user_id, device_id, message_json),
    )


def messages_up_to(
    conn: sqlite3.Connection, user_id: str, device_id: str, to: int, limit: int, *, after: int = -1
) -> list[str]:
    """The device's messages at positions in (`after`, `to`], oldest first (message_json)."""
    rows = conn.execute(
        "SELECT message_json FROM device_inbox WHERE user_id = ? AND device_id = ?"
        " AND stream > ? AND stream <= ? ORDER BY stream LIMIT ?",
        (user_id, device_id, after, to, limit),
    )
    return [row[0] for row in rows]


def messages_with_positions_up_to(
    conn: sqlite3.Connection, user_id: str, device_id: str, to: int, limit: int
) -> list[tuple[int, str]]:
    """``(stream, message_json)`` of the device's messages at positions <= ``to``, oldest
    first, at most ``limit``: a page whose last position the device acknowledges."""
    rows = conn.execute(
        "SELECT stream, message_json FROM device_inbox WHERE user_id = ? AND device_id = ?"
        " AND stream <= ? ORDER BY stream LIMIT ?",
        (user_id, device_id, to, limit),
    )
    return [(int(row[0]), row[1]) for row in rows]


def has_messages_up_to(conn: sqlite3.Connection, user_id: str, device_id: str, to: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream <= ? LIMIT 1",
        (user_id, device_id, to),
    ).fetchone()
    return row is not None


def delete_up_to(conn: sqlite3.Connection, user_id: str, device_id: str, up_to: int) -> int:
    cur = conn.execute(
        "DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream <= ?",
        (user_id, device_id, up_to),
    )
    return cur.rowcount


def delete_device_messages(conn: sqlite3.Connection, user_id: str, device_id: str) -> None:
    conn.execute(
        "DELETE FROM device_inbox WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    )


def claim_txn(
    conn: sqlite3.Connection, user_id: str, device_id: str, txn_id: str, now_ms: int
) -> bool:
    """Record a sendToDevice transaction; False when it was seen before."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO device_inbox_txns (user_id, device_id, txn_id, created_ts)"
        " VALUES (?, ?, ?, ?)",
        (user_id, device_id, txn_id, now_ms),
    )
    return cur.rowcount > 0


def claim_remote_message(
    conn: sqlite3.Connection, origin: str, message_id: str, now_ms: int
) -> bool:
    """Record an inbound ``m.direct_to_device`` EDU; False when it was seen before."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO device_inbox_remote_messages (origin, message_id, received_ts)"
        " VALUES (?, ?, ?)",
        (origin, message_id, now_ms),
    )
    return cur.rowcount > 0


def prune_remote_messages(conn: sqlite3.Connection, *, older_than_ms: int) -> int:
    """Forget inbound ``message_id``s received before ``older_than_ms``; how many."""
    return conn.execute(
        "DELETE FROM device_inbox_remote_messages WHERE received_ts < ?", (older_than_ms,)
    ).rowcount
