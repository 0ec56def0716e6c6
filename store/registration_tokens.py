"""Registration tokens (table ``registration_tokens``) for ``m.login.registration_token``.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#token-authenticated-registration):

- A token is valid while unexpired and ``pending + completed < uses_allowed``
  (``uses_allowed`` NULL: unlimited; ``expiry_time`` NULL: never expires).
- A token counts as *pending* from the UIA stage until the registration completes
  (``complete_token``) or is abandoned (``release_token``), so two parallel
  registrations can't both use its last use.
- A token is stored only as its hash (``store.accounts.token_hash``, as access tokens
  are), beside a ``hint`` (its first quarter) for listing; every function takes the
  token itself and hashes it.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from store.accounts import token_hash
from store.errors import TokenExists

__all__ = [
    "TokenExists",
    "complete_token",
    "create_token",
    "delete_token",
    "delete_token_by_hash",
    "get_token",
    "list_tokens",
    "release_token",
    "reserve_token",
    "token_hint",
    "token_valid",
    "update_token",
]

_UNCHANGED: Any = object()


def create_token(
    conn: sqlite3.Connection,
    *,
    token: str,
    uses_allowed: int | None = None,
    expiry_time: int | None = None,
) -> None:
    """Create a token.

    Raises:
        TokenExists: the token exists already.
    """
    try:
        conn.execute(
            "INSERT INTO registration_tokens (token_hash, hint, uses_allowed, expiry_time)"
            " VALUES (?, ?, ?, ?)",
            (token_hash(token), token_hint(token), uses_allowed, expiry_time),
        )
    except sqlite3.IntegrityError as exc:
        raise TokenExists() from exc


def token_hint(token: str) -> str:
    """What a listing shows of a token: its first quarter (nothing of a short one)."""
    return token[: len(token) // 4]


def get_token(conn: sqlite3.Connection, token: str) -> dict[str, Any] | None:
    """token_hash, hint, uses_allowed, pending, completed, expiry_time; or None."""
    row = conn.execute(
        "SELECT * FROM registration_tokens WHERE token_hash = ?", (token_hash(token),)
    ).fetchone()
    return dict(row) if row is not None else None


def list_tokens(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every token (as ``get_token``), ordered by hint."""
    rows = conn.execute("SELECT * FROM registration_tokens ORDER BY hint, token_hash").fetchall()
    return [dict(row) for row in rows]


def token_valid(conn: sqlite3.Connection, token: str, *, now_ms: int) -> bool:
    """True iff the token exists, is unexpired and has a use left."""
    row = conn.execute(
        "SELECT 1 FROM registration_tokens WHERE token_hash = ?"
        " AND (expiry_time IS NULL OR expiry_time > ?)"
        " AND (uses_allowed IS NULL OR pending + completed < uses_allowed)",
        (token_hash(token), now_ms),
    ).fetchone()
    return row is not None


def reserve_token(conn: sqlite3.Connection, token: str, *, now_ms: int) -> bool:
    """Take one use of the token as pending; False (nothing changed) if not valid."""
    if not token_valid(conn, token, now_ms=now_ms):
        return False
    conn.execute(
        "UPDATE registration_tokens SET pending = pending + 1 WHERE token_hash = ?",
        (token_hash(token),),
    )
    return True


def release_token(conn: sqlite3.Connection, token: str) -> None:
    """Give back a pending use (the registration was abandoned)."""
    conn.execute(
        "UPDATE registration_tokens SET pending = max(pending - 1, 0) WHERE token_hash = ?",
        (token_hash(token),),
    )


def complete_token(conn: sqlite3.Connection, token: str) -> None:
    """Turn a pending use into a completed one (the account was created)."""
    conn.execute(
        "UPDATE registration_tokens SET pending = max(pending - 1, 0),"
        " completed = completed + 1 WHERE token_hash = ?",
        (token_hash(token),),
    )


def delete_token(conn: sqlite3.Connection, token: str) -> bool:
    """Delete the token; False if it did not exist."""
    cur = conn.execute("DELETE FROM registration_tokens WHERE token_hash = ?", (token_hash(token),))
    return cur.rowcount > 0


def update_token(
    conn: sqlite3.Connection,
    token: str,
    *,
    uses_allowed: int | None = _UNCHANGED,
    expiry_time: int | None = _UNCHANGED,
) -> bool:
    """Set uses_allowed and/or expiry_time (omitted: unchanged, None: unlimited/never);
    False if there is no such token."""
    fields = {"uses_allowed": uses_allowed, "expiry_time": expiry_time}
    changes = {name: value for name, value in fields.items() if value is not _UNCHANGED}
    if not changes:
        return get_token(conn, token) is not None
    assignments = ", ".join(f"{name} = ?" for name in changes)
    cur = conn.execute(
        f"UPDATE registration_tokens SET {assignments} WHERE token_hash = ?",
        (*changes.values(), token_hash(token)),
    )
    return cur.rowcount > 0


def delete_token_by_hash(conn: sqlite3.Connection, hashed: str) -> bool:
    """Delete the token whose hash (``list_tokens``' ``token_hash``) is `hashed`: how a
    listing that only shows hints names one. False if there is none."""
    cur = conn.execute("DELETE FROM registration_tokens WHERE token_hash = ?", (hashed,))
    return cur.rowcount > 0
