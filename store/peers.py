"""LAN peers found by mDNS and what we decided about them (tables ``mesh_peers``,
``mesh_rejected_announcements``).

Rules kept:

- One row per announced server name. ``status`` is ``trusted``, ``pending`` or
  ``rejected``; the mesh layer (relay/mesh/trust.py) decides it, the store only keeps it.
- ``approved_key`` is the operator's decision (`relay peers approve`), kept apart from what
  the network says: a later announcement never changes it, only ``approve``/``revoke`` do.
- An announcement that names a peer we already hold but comes from another address with
  another key goes to ``mesh_rejected_announcements``: it never touches the real row.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = [
    "all_peers",
    "approve",
    "approved_server_names",
    "get_peer",
    "note_rejected_announcement",
    "reject_pending",
    "rejected_announcements",
    "revoke",
    "set_reachable",
    "upsert_peer",
]

STATUSES = ("trusted", "pending", "rejected")

_COLUMNS = (
    "server_name, address, port, key_id, verify_key, fingerprint, status, approved_key,"
    " version, first_seen_ts, last_seen_ts, reachable, reason"
)


def _row(cur: sqlite3.Cursor, row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    result = {d[0]: v for d, v in zip(cur.description, row, strict=True)}
    if "reachable" in result:
        result["reachable"] = bool(result["reachable"])
    return result


def get_peer(conn: sqlite3.Connection, server_name: str) -> dict[str, Any] | None:
    cur = conn.execute(f"SELECT {_COLUMNS} FROM mesh_peers WHERE server_name = ?", (server_name,))
    return _row(cur, cur.fetchone())


def all_peers(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT {_COLUMNS} FROM mesh_peers ORDER BY server_name")
    return [r for r in (_row(cur, row) for row in cur.fetchall()) if r is not None]


def approved_server_names(conn: sqlite3.Connection) -> set[str]:
    """Names of the peers the operator approved (``approved_key`` set)."""
    rows = conn.execute("SELECT server_name FROM mesh_peers WHERE approved_key IS NOT NULL")
    return {row[0] for row in rows}


def upsert_peer(
    conn: sqlite3.Connection,
    *,
    server_name: str,
    address: str,
    port: int,
    key_id: str | None,
    verify_key: str | None,
    fingerprint: str | None,
    status: str,
    version: str | None,
    reachable: bool,
    reason: str | None,
    now_ms: int,
) -> None:
    """Record what we saw of ``server_name`` and what we decided (approved_key untouched)."""
    if status not in STATUSES:
        raise ValueError(f"bad status {status!r}")
    conn.execute(
        "INSERT INTO mesh_peers (server_name, address, port, key_id, verify_key, fingerprint,"
        " status, version, first_seen_ts, last_seen_ts, reachable, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (server_name) DO UPDATE SET address = excluded.address,"
        " port = excluded.port, key_id = excluded.key_id, verify_key = excluded.verify_key,"
        " fingerprint = excluded.fingerprint, status = excluded.status,"
        " version = excluded.version, last_seen_ts = excluded.last_seen_ts,"
        " reachable = excluded.reachable, reason = excluded.reason",
        (
            server_name,
            address,
            port,
            key_id,
            verify_key,
            fingerprint,
            status,
            version,
            now_ms,
            now_ms,
            int(reachable),
            reason,
        ),
    )


def set_reachable(
    conn: sqlite3.Connection, server_name: str, reachable: bool, *, now_ms: int
) -> None:
    """Liveness changed (last_seen moves only when it answers)."""
    if reachable:
        conn.execute(
            "UPDATE mesh_peers SET reachable = 1, last_seen_ts = ? WHERE server_name = ?",
            (now_ms, server_name),
        )
    else:
        conn.execute("UPDATE mesh_peers SET reachable = 0 WHERE server_name = ?", (server_name,))


def reject_pending(
    conn: sqlite3.Connection, server_name: str, *, verify_key: str, reason: str
) -> bool:
    """Mark a pending peer rejected, if it is still pending with ``verify_key``."""
    cur = conn.execute(
        "UPDATE mesh_peers SET status = 'rejected', reason = ?"
        " WHERE server_name = ? AND status = 'pending' AND verify_key = ?",
        (reason, server_name, verify_key),
    )
    return cur.rowcount > 0


def approve(conn: sqlite3.Connection, server_name: str) -> dict[str, Any] | None:
    """Pin the key the peer currently serves; None when we never saw its key."""
    peer = get_peer(conn, server_name)
    if peer is None or not peer["verify_key"]:
        return None
    conn.execute(
        "UPDATE mesh_peers SET approved_key = verify_key, status = 'trusted',"
        " reason = 'approved by the operator' WHERE server_name = ?",
        (server_name,),
    )
    return get_peer(conn, server_name)


def revoke(conn: sqlite3.Connection, server_name: str) -> bool:
    """Forget the approval; the peer shows as rejected until approved again."""
    cur = conn.execute(
        "UPDATE mesh_peers SET approved_key = NULL, status = 'rejected',"
        " reason = 'revoked by the operator' WHERE server_name = ?",
        (server_name,),
    )
    return cur.rowcount > 0


def note_rejected_announcement(
    conn: sqlite3.Connection,
    *,
    server_name: str,
    address: str,
    port: int | None,
    fingerprint: str | None,
    reason: str,
    now_ms: int,
) -> None:
    conn.execute(
        "INSERT INTO mesh_rejected_announcements (server_name, address, port, fingerprint,"
        " reason, first_seen_ts, last_seen_ts) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (server_name, address) DO UPDATE SET port = excluded.port,"
        " fingerprint = excluded.fingerprint, reason = excluded.reason,"
        " last_seen_ts = excluded.last_seen_ts",
        (server_name, address, port, fingerprint, reason, now_ms, now_ms),
    )


def rejected_announcements(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT server_name, address, port, fingerprint, reason, first_seen_ts, last_seen_ts"
        " FROM mesh_rejected_announcements ORDER BY server_name, address"
    )
    return [r for r in (_row(cur, row) for row in cur.fetchall()) if r is not None]
