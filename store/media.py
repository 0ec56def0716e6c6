"""The content repository's rows: media ids (ours and cached remote ones) and thumbnails.

Rules kept here:

- The bytes are not here: a row names a file by its sha256 (`media/ab/cd/<sha256>` under
  the media store). Several rows may name one file (identical uploads are stored once).
- A row reserved by `/create` has `sha256 IS NULL` until its content is uploaded;
  `complete_media` fills it only while it is still NULL (no overwrite).
- Functions take the connection first and never commit (the caller owns the transaction).

Spec: https://spec.matrix.org/v1.16/client-server-api/#content-repository
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "complete_media",
    "count_pending_uploads",
    "delete_media",
    "delete_orphan_thumbnails",
    "delete_thumbnail",
    "delete_thumbnails_of",
    "get_media",
    "get_thumbnail",
    "insert_media",
    "is_sha256_referenced",
    "orphan_thumbnail_sha256s",
    "referenced_sha256s",
    "remote_cache_entries",
    "statistics",
    "touch_media",
    "touch_thumbnail",
    "upsert_thumbnail",
]


def insert_media(
    conn: sqlite3.Connection,
    *,
    server_name: str,
    media_id: str,
    remote: bool,
    user_id: str | None,
    content_type: str | None,
    filename: str | None,
    size: int | None,
    sha256: str | None,
    now_ms: int,
    unused_expires_ts: int | None = None,
) -> None:
    """A new row (a remote media row replaces a previous cached copy)."""
    verb = "INSERT OR REPLACE" if remote else "INSERT"
    conn.execute(
        f"{verb} INTO media (server_name, media_id, remote, user_id, content_type, filename,"
        " size, sha256, created_ts, unused_expires_ts, last_access_ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            server_name,
            media_id,
            int(remote),
            user_id,
            content_type,
            filename,
            size,
            sha256,
            now_ms,
            unused_expires_ts,
            now_ms,
        ),
    )


def complete_media(
    conn: sqlite3.Connection,
    *,
    server_name: str,
    media_id: str,
    content_type: str | None,
    filename: str | None,
    size: int,
    sha256: str,
    now_ms: int,
) -> bool:
    """Fill a reserved row's content; False if it already had content (or is gone)."""
    cur = conn.execute(
        "UPDATE media SET content_type = ?, filename = ?, size = ?, sha256 = ?,"
        " unused_expires_ts = NULL, last_access_ts = ?"
        " WHERE server_name = ? AND media_id = ? AND sha256 IS NULL",
        (content_type, filename, size, sha256, now_ms, server_name, media_id),
    )
    return cur.rowcount == 1


def get_media(conn: sqlite3.Connection, server_name: str, media_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM media WHERE server_name = ? AND media_id = ?", (server_name, media_id)
    ).fetchone()
    return dict(row) if row else None


def count_pending_uploads(conn: sqlite3.Connection, user_id: str, now_ms: int) -> int:
    """Ids `user_id` reserved with /create, not uploaded and not expired."""
    return conn.execute(
        "SELECT COUNT(*) FROM media WHERE user_id = ? AND sha256 IS NULL AND unused_expires_ts > ?",
        (user_id, now_ms),
    ).fetchone()[0]


def touch_media(conn: sqlite3.Connection, server_name: str, media_id: str, now_ms: int) -> None:
    conn.execute(
        "UPDATE media SET last_access_ts = ? WHERE server_name = ? AND media_id = ?",
        (now_ms, server_name, media_id),
    )


def delete_media(conn: sqlite3.Connection, server_name: str, media_id: str) -> None:
    conn.execute(
        "DELETE FROM media WHERE server_name = ? AND media_id = ?", (server_name, media_id)
    )


def get_thumbnail(
    conn: sqlite3.Connection, server_name: str, media_id: str, width: int, height: int, method: str
) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM media_thumbnails WHERE server_name = ? AND media_id = ?"
        " AND width = ? AND height = ? AND method = ?",
        (server_name, media_id, width, height, method),
    ).fetchone()
    return dict(row) if row else None


def upsert_thumbnail(
    conn: sqlite3.Connection,
    *,
    server_name: str,
    media_id: str,
    width: int,
    height: int,
    method: str,
    remote: bool,
    content_type: str,
    size: int,
    sha256: str,
    now_ms: int,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO media_thumbnails (server_name, media_id, width, height, method,"
        " remote, content_type, size, sha256, created_ts, last_access_ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            server_name,
            media_id,
            width,
            height,
            method,
            int(remote),
            content_type,
            size,
            sha256,
            now_ms,
            now_ms,
        ),
    )


def touch_thumbnail(
    conn: sqlite3.Connection,
    server_name: str,
    media_id: str,
    width: int,
    height: int,
    method: str,
    now_ms: int,
) -> None:
    conn.execute(
        "UPDATE media_thumbnails SET last_access_ts = ? WHERE server_name = ? AND media_id = ?"
        " AND width = ? AND height = ? AND method = ?",
        (now_ms, server_name, media_id, width, height, method),
    )


def delete_thumbnails_of(conn: sqlite3.Connection, server_name: str, media_id: str) -> int:
    return conn.execute(
        "DELETE FROM media_thumbnails WHERE server_name = ? AND media_id = ?",
        (server_name, media_id),
    ).rowcount


def delete_thumbnail(
    conn: sqlite3.Connection, server_name: str, media_id: str, width: int, height: int, method: str
) -> None:
    conn.execute(
        "DELETE FROM media_thumbnails WHERE server_name = ? AND media_id = ?"
        " AND width = ? AND height = ? AND method = ?",
        (server_name, media_id, width, height, method),
    )


def orphan_thumbnail_sha256s(conn: sqlite3.Connection) -> list[str]:
    """The sha256 of every thumbnail ``delete_orphan_thumbnails`` would delete."""
    rows = conn.execute(
        "SELECT sha256 FROM media_thumbnails WHERE remote = 0 AND NOT EXISTS (SELECT 1"
        " FROM media m WHERE m.server_name = media_thumbnails.server_name"
        " AND m.media_id = media_thumbnails.media_id)"
    ).fetchall()
    return [row[0] for row in rows]


def delete_orphan_thumbnails(conn: sqlite3.Connection) -> int:
    """Thumbnails of local media that no longer exists (remote thumbnails may be cached
    without their original, and go by the cache rules instead)."""
    return conn.execute(
        "DELETE FROM media_thumbnails WHERE remote = 0 AND NOT EXISTS (SELECT 1 FROM media m"
        " WHERE m.server_name = media_thumbnails.server_name"
        " AND m.media_id = media_thumbnails.media_id)"
    ).rowcount


def remote_cache_entries(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Everything cached from other servers (media and thumbnails), least recently used
    first: `kind` ("media" | "thumbnail"), the key columns, `size`, `sha256`,
    `last_access_ts`."""
    rows = conn.execute(
        "SELECT 'media' AS kind, server_name, media_id, 0 AS width, 0 AS height, '' AS method,"
        " size, sha256, last_access_ts FROM media WHERE remote = 1 AND sha256 IS NOT NULL"
        " UNION ALL"
        " SELECT 'thumbnail', server_name, media_id, width, height, method, size, sha256,"
        " last_access_ts FROM media_thumbnails WHERE remote = 1"
        " ORDER BY last_access_ts"
    ).fetchall()
    return [dict(row) for row in rows]


def is_sha256_referenced(conn: sqlite3.Connection, sha256: str) -> bool:
    return (
        conn.execute(
            "SELECT EXISTS (SELECT 1 FROM media WHERE sha256 = ?)"
            " OR EXISTS (SELECT 1 FROM media_thumbnails WHERE sha256 = ?)",
            (sha256, sha256),
        ).fetchone()[0]
        == 1
    )


def referenced_sha256s(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT sha256 FROM media WHERE sha256 IS NOT NULL"
        " UNION SELECT sha256 FROM media_thumbnails"
    ).fetchall()
    return {row[0] for row in rows}


def statistics(conn: sqlite3.Connection) -> dict[str, int]:
    """Counts and bytes for `relay status`: local and remote media, thumbnails."""
    local = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM media WHERE remote = 0 AND sha256 IS NOT NULL"
    ).fetchone()
    remote = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM media WHERE remote = 1 AND sha256 IS NOT NULL"
    ).fetchone()
    thumbs = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM media_thumbnails"
    ).fetchone()
    return {
        "local_media": local[0],
        "local_bytes": local[1],
        "remote_media": remote[0],
        "remote_bytes": remote[1],
        "thumbnails": thumbs[0],
        "thumbnail_bytes": thumbs[1],
    }
