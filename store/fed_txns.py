"""Inbound federation transaction dedup (table ``federation_txn_ids``).

A server retries ``PUT /_matrix/federation/v1/send/{txnId}`` until it gets an answer;
the retry must get the same answer and store nothing twice.
https://spec.matrix.org/v1.16/server-server-api/#transactions

Rules kept: keyed by ``(origin, txn_id)`` (transaction ids are only unique per
origin); the first response stored wins; ``put_txn`` belongs in the write transaction
that stored the transaction's PDUs. Functions take the connection first and never commit.
"""

from __future__ import annotations

import sqlite3

__all__ = ["get_txn", "prune_txns", "put_txn"]


def get_txn(conn: sqlite3.Connection, *, origin: str, txn_id: str) -> str | None:
    """The JSON response stored for ``origin``'s transaction, or None if it is new."""
    row = conn.execute(
        "SELECT response FROM federation_txn_ids WHERE origin = ? AND txn_id = ?",
        (origin, txn_id),
    ).fetchone()
    return row[0] if row is not None else None


def put_txn(
    conn: sqlite3.Connection, *, origin: str, txn_id: str, response: str, now_ms: int
) -> str:
    """Record the JSON response unless one is stored; return the stored one."""
    conn.execute(
        "INSERT OR IGNORE INTO federation_txn_ids (origin, txn_id, response, received_ts)"
        " VALUES (?, ?, ?, ?)",
        (origin, txn_id, response, now_ms),
    )
    stored = get_txn(conn, origin=origin, txn_id=txn_id)
    assert stored is not None
    return stored


def prune_txns(conn: sqlite3.Connection, *, older_than_ms: int) -> int:
    """Forget transactions received before ``older_than_ms``; returns how many."""
    return conn.execute(
        "DELETE FROM federation_txn_ids WHERE received_ts < ?", (older_than_ms,)
    ).rowcount
