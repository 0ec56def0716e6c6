"""Cache of remote servers' signing keys (table ``server_keys``).

Rules kept:

- The store keeps what the caller verified: keys are stored only after the key
  response's own signature checked out (or came from a pinned peer). It does no
  crypto; ``verify_key`` is the unpadded base64 string from the key JSON.
- ``valid_until_ts`` bounds which events a key may verify (for ``old_verify_keys``
  ``expired_ts`` does). https://spec.matrix.org/v1.16/server-server-api/#retrieving-server-keys
- A fetch replaces the stored row for the same ``(server_name, key_id)``.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from store.db import utils

__all__ = ["delete_server_keys", "get_server_key", "get_server_keys", "put_server_key"]


def put_server_key(
    conn: sqlite3.Connection,
    *,
    server_name: str,
    key_id: str,
    verify_key: str,
    valid_until_ts: int,
    now_ms: int,
    expired_ts: int | None = None,
) -> None:
    """Store (or refresh) one verified key of ``server_name``."""
    utils(conn)["server_keys"].upsert(
        {
            "server_name": server_name,
            "key_id": key_id,
            "verify_key": verify_key,
            "valid_until_ts": valid_until_ts,
            "expired_ts": expired_ts,
            "fetched_ts": now_ms,
        },
        pk=("server_name", "key_id"),
    )


def get_server_key(
    conn: sqlite3.Connection, server_name: str, key_id: str
) -> dict[str, Any] | None:
    """The cached key: server_name, key_id, verify_key, valid_until_ts, expired_ts,
    fetched_ts; or None."""
    row = conn.execute(
        "SELECT * FROM server_keys WHERE server_name = ? AND key_id = ?", (server_name, key_id)
    ).fetchone()
    return dict(row) if row is not None else None


def get_server_keys(conn: sqlite3.Connection, server_name: str) -> dict[str, dict[str, Any]]:
    """``{key_id: key row}`` for every cached key of ``server_name``."""
    rows = conn.execute("SELECT * FROM server_keys WHERE server_name = ?", (server_name,))
    return {row["key_id"]: dict(row) for row in rows}


def delete_server_keys(conn: sqlite3.Connection, server_name: str) -> int:
    """Forget every cached key of ``server_name`` (e.g. a peer's pin was revoked)."""
    return conn.execute("DELETE FROM server_keys WHERE server_name = ?", (server_name,)).rowcount
