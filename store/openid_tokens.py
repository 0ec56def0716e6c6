"""OpenID tokens (table ``openid_tokens``): a local user's proof of identity for a third
party, checked through federation ``/openid/userinfo``.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#openid):

- A token is stored only as its hash (``store.accounts.token_hash``), as access tokens are.
- A token past ``expires_ms`` names nobody; expired rows go when a new token is made, so the
  table holds at most the tokens of the last hour.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3

from store.accounts import token_hash


def put_openid_token(
    conn: sqlite3.Connection, *, token: str, user_id: str, expires_ms: int, now_ms: int
) -> None:
    conn.execute("DELETE FROM openid_tokens WHERE expires_ms <= ?", (now_ms,))
    conn.execute(
        "INSERT INTO openid_tokens (token_hash, user_id, expires_ms) VALUES (?, ?, ?)",
        (token_hash(token), user_id, expires_ms),
    )


def get_openid_user(conn: sqlite3.Connection, token: str, now_ms: int) -> str | None:
    """The user an unexpired token was made for, else None."""
    row = conn.execute(
        "SELECT user_id FROM openid_tokens WHERE token_hash = ? AND expires_ms > ?",
        (token_hash(token), now_ms),
    ).fetchone()
    return row[0] if row is not None else None


def delete_user_openid_tokens(conn: sqlite3.Connection, user_id: str) -> int:
    """Revoke every token of the user (deactivation); how many there were."""
    return conn.execute("DELETE FROM openid_tokens WHERE user_id = ?", (user_id,)).rowcount
