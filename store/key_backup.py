"""Server-side key backup (tables ``e2e_room_keys_versions``, ``e2e_room_keys``).

Rules kept:

- Versions are numbered per user from 1 and never reused; a deleted version stays
  as a tombstone (``deleted = 1``) so its number is not handed out again.
- The current version is the highest one not deleted.
- Every change to a version's keys bumps its ``etag``.
- Functions take the connection first and never commit (see ``store.db``).

Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups
"""

from __future__ import annotations

import sqlite3
from typing import Any


def create_version(conn: sqlite3.Connection, user_id: str, algorithm: str, auth_data: str) -> int:
    row = conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM e2e_room_keys_versions WHERE user_id = ?",
        (user_id,),
    ).fetchone()
    version = int(row[0]) + 1
    conn.execute(
        "INSERT INTO e2e_room_keys_versions (user_id, version, algorithm, auth_data)"
        " VALUES (?, ?, ?, ?)",
        (user_id, version, algorithm, auth_data),
    )
    return version


def get_version(
    conn: sqlite3.Connection, user_id: str, version: int | None = None
) -> dict[str, Any] | None:
    """A live version (the current one when `version` is None): version, algorithm,
    auth_data, etag."""
    if version is None:
        row = conn.execute(
            "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
            " WHERE user_id = ? AND deleted = 0 ORDER BY version DESC LIMIT 1",
            (user_id,),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
            " WHERE user_id = ? AND version = ? AND deleted = 0",
            (user_id, version),
        ).fetchone()
    return dict(row) if row else None


def update_version(conn: sqlite3.Connection, user_id: str, version: int, auth_data: str) -> bool:
    cur = conn.execute(
        "UPDATE e2e_room_keys_versions SET auth_data = ?"
        " WHERE user_id = ? AND version = ? AND deleted = 0",
        (auth_data, user_id, version),
    )
    return cur.rowcount > 0


def delete_version(conn: sqlite3.Connection, user_id: str, version: int) -> bool:
    cur = conn.execute(
        "UPDATE e2e_room_keys_versions SET deleted = 1 WHERE user_id = ? AND version = ?"
        " AND deleted = 0",
        (user_id, version),
    )
    conn.execute("DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?", (user_id, version))
    return cur.rowcount > 0


def bump_etag(conn: sqlite3.Connection, user_id: str, version: int) -> None:
    conn.execute(
        "UPDATE e2e_room_keys_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?",
        (user_id, version),
    )


def count_keys(conn: sqlite3.Connection, user_id: str, version: int) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = ? AND version = ?", (user_id, version)
    ).fetchone()
    return int(row[0])


def get_key(
    conn: sqlite3.Connection, user_id: str, version: int, room_id: str, session_id: str
) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,"
        " session_data FROM e2e_room_keys"
        " WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?",
        (user_id, version, room_id, session_id),
    ).fetchone()
    return dict(row) if row else None


def put_key(
    conn: sqlite3.Connection,
    user_id: str,
    version: int,
    room_id: str,
    session_id: str,
    *,
    first_message_index: int,
    forwarded_count: int,
    is_verified: bool,
    session_data: str,
) -> None:
    conn.execute(
        "INSERT INTO e2e_room_keys (user_id, version, room_id, session_id, first_message_index,"
        " forwarded_count, is_verified, session_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
        " first_message_index = excluded.first_message_index,"
        " forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified,"
        " session_data = excluded.session_data",
        (
            user_id,
            version,
            room_id,
            session_id,
            first_message_index,
            forwarded_count,
            int(is_verified),
            session_data,
        ),
    )


def get_keys(
    conn: sqlite3.Connection,
    user_id: str,
    version: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> list[dict[str, Any]]:
    sql = (
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,"
        " session_data FROM e2e_room_keys WHERE user_id = ? AND version = ?"
    )
    args: list[Any] = [user_id, version]
    if room_id is not None:
        sql += " AND room_id = ?"
        args.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
    return [dict(row) for row in conn.execute(sql + " ORDER BY room_id, session_id", args)]


def delete_keys(
    conn: sqlite3.Connection,
    user_id: str,
    version: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> int:
    sql = "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?"
    args: list[Any] = [user_id, version]
    if room_id is not None:
        sql += " AND room_id = ?"
        args.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
    return conn.execute(sql, args).rowcount
