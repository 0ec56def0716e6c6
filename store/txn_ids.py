"""Client transaction ids (tables ``client_txn_ids``, ``event_txn_ids``): a retried
request gets the answer the first one got, never a second event, and the sender's own
device sees its transaction id on the event (``unsigned.transaction_id``).

Rules kept:

- The key is ``(user_id, device_id, scope, txn_id)``: the spec scopes a transaction id
  to the device (access token) and the endpoint. ``scope`` names the endpoint and its
  path parameters, e.g. ``"send:!room:server"`` or ``"sendToDevice:m.room.encrypted"``.
  https://spec.matrix.org/v1.16/client-server-api/#transaction-identifiers
- ``result`` is whatever the caller must answer a retry with (an event_id, or JSON).
- The first write wins: ``put_txn`` never overwrites and returns the stored result.
  It belongs in the same write transaction as the event it records.
- ``event_txn_ids`` says which device sent an event under which transaction id; it is
  written in the same write transaction as the event (``put_event_txn_id``) and read
  only for that user and device (``event_txn_id``).
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3

__all__ = ["event_txn_id", "get_txn", "prune_txns", "put_event_txn_id", "put_txn"]


def get_txn(
    conn: sqlite3.Connection, *, user_id: str, device_id: str, scope: str, txn_id: str
) -> str | None:
    """The result stored for this transaction id, or None if it is new."""
    row = conn.execute(
        "SELECT result FROM client_txn_ids"
        " WHERE user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?",
        (user_id, device_id, scope, txn_id),
    ).fetchone()
    return row[0] if row is not None else None


def put_txn(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    device_id: str,
    scope: str,
    txn_id: str,
    result: str,
    now_ms: int,
) -> str:
    """Record ``result`` for the transaction id unless one is stored already; return the
    stored result (the earlier one if this is a retry)."""
    conn.execute(
        "INSERT OR IGNORE INTO client_txn_ids"
        " (user_id, device_id, scope, txn_id, result, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, device_id, scope, txn_id, result, now_ms),
    )
    stored = get_txn(conn, user_id=user_id, device_id=device_id, scope=scope, txn_id=txn_id)
    assert stored is not None
    return stored


def prune_txns(conn: sqlite3.Connection, *, older_than_ms: int) -> int:
    """Forget transaction ids created before ``older_than_ms``; returns how many."""
    return conn.execute(
        "DELETE FROM client_txn_ids WHERE created_ts < ?", (older_than_ms,)
    ).rowcount


def put_event_txn_id(
    conn: sqlite3.Connection, *, event_id: str, user_id: str, device_id: str, txn_id: str
) -> None:
    """Record that ``user_id``'s ``device_id`` sent ``event_id`` as ``txn_id`` (first wins)."""
    conn.execute(
        "INSERT OR IGNORE INTO event_txn_ids (event_id, user_id, device_id, txn_id)"
        " VALUES (?, ?, ?, ?)",
        (event_id, user_id, device_id, txn_id),
    )


def event_txn_id(
    conn: sqlite3.Connection, event_id: str, user_id: str, device_id: str
) -> str | None:
    """The transaction id ``user_id``'s ``device_id`` sent ``event_id`` under, or None."""
    row = conn.execute(
        "SELECT txn_id FROM event_txn_ids WHERE event_id = ? AND user_id = ? AND device_id = ?",
        (event_id, user_id, device_id),
    ).fetchone()
    return row[0] if row is not None else None
