"""Users, their devices and access tokens (tables ``users``, ``devices``, ``access_tokens``).

Rules kept:

- Passwords are stored only as slow, salted scrypt hashes (``store.passwords``, whose
  ``hash_password``/``verify_password`` are re-exported here). Hashing takes tens of
  milliseconds: hash outside the writer thread and pass ``password_hash=`` to keep the
  writer fast.
- Access tokens are stored as sha256 hex only; the clear token exists only in the
  client's hands and in the login response. Deleting a device deletes its tokens.
- An erased user (deactivated with ``erase``) keeps no display name or avatar.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import Any

from store.errors import UserExists
from store.passwords import hash_password, verify_password

__all__ = [
    "UserExists",
    "add_access_token",
    "count_users",
    "create_user",
    "deactivate_user",
    "delete_access_token",
    "delete_all_tokens",
    "delete_device",
    "delete_device_tokens",
    "erase_user",
    "erased_users",
    "get_device",
    "get_profile",
    "get_user",
    "hash_password",
    "list_devices",
    "list_users",
    "lookup_access_token",
    "reactivate_user",
    "rename_device",
    "set_admin",
    "set_password",
    "set_profile",
    "token_hash",
    "touch_device",
    "upsert_device",
    "verify_password",
]

_UNCHANGED: Any = object()


# Users ------------------------------------------------------------------------------


def create_user(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    password: str | None,
    admin: bool = False,
    now_ms: int,
    password_hash: str | None = None,
) -> None:
    """Register ``user_id``. ``password=None`` (and no ``password_hash``) disables
    password login. ``password_hash`` (from ``hash_password``) wins over ``password``.

    Raises:
        UserExists: the user_id is taken (deactivated users keep theirs).
    """
    if password_hash is None and password is not None:
        password_hash = hash_password(password)
    try:
        conn.execute(
            "INSERT INTO users (user_id, password_hash, is_admin, created_ts) VALUES (?, ?, ?, ?)",
            (user_id, password_hash, int(admin), now_ms),
        )
    except sqlite3.IntegrityError as exc:
        raise UserExists(user_id) from exc


def get_user(conn: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    """The user's row: user_id, password_hash, is_admin, created_ts, deactivated,
    displayname, avatar_url (flags as bool), or None."""
    row = conn.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return None
    user = dict(row)
    user["is_admin"] = bool(user["is_admin"])
    user["deactivated"] = bool(user["deactivated"])
    user["erased"] = bool(user["erased"])
    return user


def get_profile(conn: sqlite3.Connection, user_id: str) -> tuple[str | None, str | None] | None:
    """``(displayname, avatar_url)`` of a local user, or None if there is no such user."""
    row = conn.execute(
        "SELECT displayname, avatar_url FROM users WHERE user_id = ?", (user_id,)
    ).fetchone()
    return (row[0], row[1]) if row is not None else None


def set_password(
    conn: sqlite3.Connection,
    user_id: str,
    password: str | None,
    *,
    password_hash: str | None = None,
) -> bool:
    """Replace the user's password (None disables password login); False if no such user."""
    if password_hash is None and password is not None:
        password_hash = hash_password(password)
    cur = conn.execute(
        "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
    )
    return cur.rowcount > 0


def set_admin(conn: sqlite3.Connection, user_id: str, admin: bool) -> bool:
    """Grant or revoke server admin; False if no such user."""
    cur = conn.execute("UPDATE users SET is_admin = ? WHERE user_id = ?", (int(admin), user_id))
    return cur.rowcount > 0


def set_profile(
    conn: sqlite3.Connection,
    user_id: str,
    *,
    displayname: str | None = _UNCHANGED,
    avatar_url: str | None = _UNCHANGED,
) -> bool:
    """Set displayname and/or avatar_url (omitted: unchanged, None: cleared).
    False if no such user."""
    fields = {"displayname": displayname, "avatar_url": avatar_url}
    changes = {name: value for name, value in fields.items() if value is not _UNCHANGED}
    if not changes:
        return get_user(conn, user_id) is not None
    assignments = ", ".join(f"{name} = ?" for name in changes)
    cur = conn.execute(
        f"UPDATE users SET {assignments} WHERE user_id = ?", (*changes.values(), user_id)
    )
    return cur.rowcount > 0


def deactivate_user(conn: sqlite3.Connection, user_id: str) -> bool:
    """Mark the user deactivated, clear its password and delete its devices and tokens.
    The user_id stays taken. False if no such user."""
    cur = conn.execute(
        "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?", (user_id,)
    )
    conn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
    conn.execute("DELETE FROM devices WHERE user_id = ?", (user_id,))
    return cur.rowcount > 0


def erase_user(conn: sqlite3.Connection, user_id: str) -> bool:
    """Mark the user erased and clear its profile; False if no such user."""
    cur = conn.execute(
        "UPDATE users SET erased = 1, displayname = NULL, avatar_url = NULL WHERE user_id = ?",
        (user_id,),
    )
    return cur.rowcount > 0


def erased_users(conn: sqlite3.Connection, user_ids: Iterable[str]) -> set[str]:
    """Which of `user_ids` are local users deactivated with `erase` (one primary-key
    lookup per distinct id: the cost follows the ids asked about, never the history)."""
    wanted = sorted(set(user_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT user_id FROM users WHERE user_id IN ({marks}) AND erased = 1", chunk
        )
        found.update(row[0] for row in rows)
    return found


def reactivate_user(conn: sqlite3.Connection, user_id: str) -> bool:
    """Clear the deactivated flag (the user has no password until one is set); False if
    no such user."""
    cur = conn.execute("UPDATE users SET deactivated = 0 WHERE user_id = ?", (user_id,))
    return cur.rowcount > 0


def list_users(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every user as ``get_user`` (without ``password_hash``) plus ``last_seen_ts`` (the
    latest of its devices', or None), ordered by user_id."""
    rows = conn.execute(
        "SELECT u.user_id, u.is_admin, u.created_ts, u.deactivated, u.displayname,"
        " u.avatar_url, (SELECT max(d.last_seen_ts) FROM devices d"
        " WHERE d.user_id = u.user_id) AS last_seen_ts"
        " FROM users u ORDER BY u.user_id"
    ).fetchall()
    users = []
    for row in rows:
        user = dict(row)
        user["is_admin"] = bool(user["is_admin"])
        user["deactivated"] = bool(user["deactivated"])
        users.append(user)
    return users


def count_users(conn: sqlite3.Connection) -> int:
    """Number of registered users, deactivated ones included."""
    return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])


# Devices ------------------------------------------------------------------------------


def upsert_device(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    device_id: str,
    display_name: str | None = None,
    now_ms: int,
    ip: str | None = None,
) -> None:
    """Create the device, or refresh an existing one (login with a known device_id).

    ``last_seen_ts`` becomes ``now_ms``; ``display_name`` and ``ip`` replace the stored
    values only when given. The user must exist (foreign key).
    """
    conn.execute(
        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET"
        " display_name = coalesce(excluded.display_name, display_name),"
        " last_seen_ts = excluded.last_seen_ts,"
        " last_seen_ip = coalesce(excluded.last_seen_ip, last_seen_ip)",
        (user_id, device_id, display_name, now_ms, ip),
    )


def touch_device(
    conn: sqlite3.Connection, user_id: str, device_id: str, *, now_ms: int, ip: str | None
) -> None:
    """Record that the device was seen now, from ``ip``."""
    conn.execute(
        "UPDATE devices SET last_seen_ts = ?, last_seen_ip = coalesce(?, last_seen_ip)"
        " WHERE user_id = ? AND device_id = ?",
        (now_ms, ip, user_id, device_id),
    )


def get_device(conn: sqlite3.Connection, user_id: str, device_id: str) -> dict[str, Any] | None:
    """The device row (user_id, device_id, display_name, last_seen_ts, last_seen_ip)."""
    row = conn.execute(
        "SELECT * FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    ).fetchone()
    return dict(row) if row is not None else None


def list_devices(conn: sqlite3.Connection, user_id: str) -> list[dict[str, Any]]:
    """All the user's devices, ordered by device_id."""
    rows = conn.execute(
        "SELECT * FROM devices WHERE user_id = ? ORDER BY device_id", (user_id,)
    ).fetchall()
    return [dict(row) for row in rows]


def rename_device(
    conn: sqlite3.Connection, user_id: str, device_id: str, display_name: str | None
) -> bool:
    """Set the device's display name; False if no such device."""
    cur = conn.execute(
        "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
        (display_name, user_id, device_id),
    )
    return cur.rowcount > 0


def delete_device(conn: sqlite3.Connection, user_id: str, device_id: str) -> bool:
    """Delete the device, every access token issued to it and what its sliding sync
    connections were sent; False if no such device."""
    delete_device_tokens(conn, user_id, device_id)
    conn.execute(
        "DELETE FROM sliding_sync_connections WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    )
    cur = conn.execute(
        "DELETE FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    )
    return cur.rowcount > 0


# Access tokens ------------------------------------------------------------------------


def token_hash(token: str) -> str:
    """The form a token is stored and looked up in: sha256 of its UTF-8, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_access_token(
    conn: sqlite3.Connection, *, token: str, user_id: str, device_id: str, now_ms: int
) -> None:
    """Store (the hash of) a new token for an existing device."""
    conn.execute(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts)"
        " VALUES (?, ?, ?, ?)",
        (token_hash(token), user_id, device_id, now_ms),
    )


def lookup_access_token(conn: sqlite3.Connection, token: str) -> tuple[str, str] | None:
    """``(user_id, device_id)`` the token was issued to, or None if unknown/revoked."""
    row = conn.execute(
        "SELECT user_id, device_id FROM access_tokens WHERE token_hash = ?",
        (token_hash(token),),
    ).fetchone()
    return (row[0], row[1]) if row is not None else None


def delete_access_token(conn: sqlite3.Connection, token: str) -> bool:
    """Revoke one token (logout); False if it was unknown."""
    cur = conn.execute("DELETE FROM access_tokens WHERE token_hash = ?", (token_hash(token),))
    return cur.rowcount > 0


def delete_device_tokens(conn: sqlite3.Connection, user_id: str, device_id: str) -> int:
    """Revoke every token of one device, keeping the device (re-login with its id).
    Returns how many were deleted."""
    return conn.execute(
        "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    ).rowcount


def delete_all_tokens(
    conn: sqlite3.Connection, user_id: str, except_device: str | None = None
) -> int:
    """Revoke all the user's tokens (logout/all), keeping ``except_device``'s if given.
    Returns how many were deleted."""
    if except_device is None:
        cur = conn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
    else:
        cur = conn.execute(
            "DELETE FROM access_tokens WHERE user_id = ? AND device_id != ?",
            (user_id, except_device),
        )
    return cur.rowcount
