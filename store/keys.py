"""Cache of remote servers' signing keys (table ``server_keys``).

Rules kept:

- The store keeps what the caller verified: keys are stored only after the key
  response's own signature checked out (or came from a pinned peer). It does no
  crypto; ``verify_key`` is the unpadded base64 string from the key JSON.
- ``valid_until_ts`` bounds which events a key may verify (for ``old_verify_keys``
  ``expired_ts`` does). https://spec.matrix.org/v1.16/server-server-api/#retrieving-server-keys
- A fetch replaces the stored row for the same ``(server_name, key_id)``.
- ``server_key_responses`` keeps each server's newest signed key response whole
  (canonical JSON text), for serving it as a notary; a response never replaces a
  newer one (larger ``valid_until_ts``).
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from store.db import utils

__all__ = [
    "delete_server_keys",
    "get_server_key",
    "get_server_key_response",
    "get_server_keys",
    "put_server_key",
    "put_server_key_response",
]


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
    utils(conn).table("server_keys").upsert(
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
    conn.execute("DELETE FROM server_key_responses WHERE server_name = ?", (server_name,))
    return conn.execute("DELETE FROM server_keys WHERE server_name = ?", (server_name,)).rowcount


def put_server_key_response(
    conn: sqlite3.Connection,
    *,
    server_name: str,
    response_json: str,
    valid_until_ts: int,
    from_server: str,
    now_ms: int,
) -> bool:
    """Keep ``response_json`` as ``server_name``'s key response unless a newer one is kept.

    Returns whether it was stored."""
    cur = conn.execute(
        """
        INSERT INTO server_key_responses
            (server_name, response_json, valid_until_ts, from_server, fetched_ts)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (server_name) DO UPDATE SET
            response_json = excluded.response_json,
            valid_until_ts = excluded.valid_until_ts,
            from_server = excluded.from_server,
            fetched_ts = excluded.fetched_ts
        WHERE excluded.valid_until_ts >= server_key_responses.valid_until_ts
        """,
        (server_name, response_json, valid_until_ts, from_server, now_ms),
    )
    return cur.rowcount > 0


def get_server_key_response(conn: sqlite3.Connection, server_name: str) -> dict[str, Any] | None:
    """The kept response: server_name, response_json, valid_until_ts, from_server,
    fetched_ts; or None."""
    row = conn.execute(
        "SELECT * FROM server_key_responses WHERE server_name = ?", (server_name,)
    ).fetchone()
    return dict(row) if row is not None else None
