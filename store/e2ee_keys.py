"""End-to-end encryption keys (tables ``e2e_device_keys``, ``e2e_one_time_keys``,
``e2e_fallback_keys``, ``e2e_cross_signing_keys``, ``e2e_cross_signing_signatures``,
``device_list_changes``, ``remote_device_lists``, ``remote_devices``).

Rules kept:

- Keys are stored as the JSON the client signed (text); this module never checks
  signatures (relay/e2ee/device_keys.py does, before writing).
- A device's keys go with the device (foreign keys ``ON DELETE CASCADE``).
- A one-time key is handed out once: ``claim_one_time_key`` deletes what it returns.
  A fallback key is handed out when no one-time key is left, and marked used.
- ``device_list_changes`` rows take positions on the main stream (the caller allocates
  them), so /sync and /keys/changes read them with the same tokens as events.
- Functions take the connection first and never commit (see ``store.db``).

Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

# -- device keys ----------------------------------------------------------------------------


def get_device_keys(conn: sqlite3.Connection, user_id: str, device_id: str) -> str | None:
    row = conn.execute(
        "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    ).fetchone()
    return row[0] if row else None


def set_device_keys(conn: sqlite3.Connection, user_id: str, device_id: str, key_json: str) -> None:
    conn.execute(
        "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json",
        (user_id, device_id, key_json),
    )


def devices_with_keys(conn: sqlite3.Connection, user_id: str) -> list[dict[str, Any]]:
    """Every device of a local user (device_id, display_name, key_json or None)."""
    rows = conn.execute(
        "SELECT d.device_id, d.display_name, k.key_json FROM devices d"
        " LEFT JOIN e2e_device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id"
        " WHERE d.user_id = ? ORDER BY d.device_id",
        (user_id,),
    )
    return [dict(row) for row in rows]


# -- one-time and fallback keys ---------------------------------------------------------------


def get_one_time_key(
    conn: sqlite3.Connection, user_id: str, device_id: str, algorithm: str, key_id: str
) -> str | None:
    row = conn.execute(
        "SELECT key_json FROM e2e_one_time_keys"
        " WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?",
        (user_id, device_id, algorithm, key_id),
    ).fetchone()
    return row[0] if row else None


def add_one_time_key(
    conn: sqlite3.Connection,
    user_id: str,
    device_id: str,
    algorithm: str,
    key_id: str,
    key_json: str,
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO e2e_one_time_keys"
        " (user_id, device_id, algorithm, key_id, key_json) VALUES (?, ?, ?, ?, ?)",
        (user_id, device_id, algorithm, key_id, key_json),
    )


def count_one_time_keys(conn: sqlite3.Connection, user_id: str, device_id: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?"
        " GROUP BY algorithm",
        (user_id, device_id),
    )
    return {row[0]: row[1] for row in rows}


def claim_one_time_key(
    conn: sqlite3.Connection, user_id: str, device_id: str, algorithm: str
) -> tuple[str, str] | None:
    """Take (and delete) one one-time key; falls back to the fallback key (marked used).
    Returns ("algorithm:key_id", key_json) or None."""
    row = conn.execute(
        "DELETE FROM e2e_one_time_keys WHERE rowid = (SELECT rowid FROM e2e_one_time_keys"
        " WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY key_id LIMIT 1)"
        " RETURNING key_id, key_json",
        (user_id, device_id, algorithm),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "UPDATE e2e_fallback_keys SET used = 1"
            " WHERE user_id = ? AND device_id = ? AND algorithm = ? RETURNING key_id, key_json",
            (user_id, device_id, algorithm),
        ).fetchone()
    return (f"{algorithm}:{row[0]}", row[1]) if row else None


def set_fallback_key(
    conn: sqlite3.Connection,
    user_id: str,
    device_id: str,
    algorithm: str,
    key_id: str,
    key_json: str,
) -> None:
    """Replace the device's fallback key for `algorithm` (the same key again keeps its
    used flag)."""
    conn.execute(
        "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET"
        " used = CASE WHEN key_id = excluded.key_id AND key_json = excluded.key_json"
        " THEN used ELSE 0 END, key_id = excluded.key_id, key_json = excluded.key_json",
        (user_id, device_id, algorithm, key_id, key_json),
    )


def unused_fallback_key_types(conn: sqlite3.Connection, user_id: str, device_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND used = 0"
        " ORDER BY algorithm",
        (user_id, device_id),
    )
    return [row[0] for row in rows]


# -- cross-signing ------------------------------------------------------------------------------


def get_cross_signing_keys(conn: sqlite3.Connection, user_id: str) -> dict[str, str]:
    """{key_type: key_json} for master, self_signing, user_signing."""
    rows = conn.execute(
        "SELECT key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = ?", (user_id,)
    )
    return {row[0]: row[1] for row in rows}


def set_cross_signing_key(
    conn: sqlite3.Connection, user_id: str, key_type: str, key_json: str
) -> None:
    conn.execute(
        "INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json",
        (user_id, key_type, key_json),
    )


def add_signature(
    conn: sqlite3.Connection,
    *,
    signer_user_id: str,
    signer_key_id: str,
    target_user_id: str,
    target_key_id: str,
    signature: str,
) -> None:
    conn.execute(
        "INSERT INTO e2e_cross_signing_signatures"
        " (signer_user_id, signer_key_id, target_user_id, target_key_id, signature)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET signature = excluded.signature",
        (signer_user_id, signer_key_id, target_user_id, target_key_id, signature),
    )


def signatures_for(
    conn: sqlite3.Connection, target_user_id: str, target_key_id: str
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT signer_user_id, signer_key_id, signature FROM e2e_cross_signing_signatures"
        " WHERE target_user_id = ? AND target_key_id = ?",
        (target_user_id, target_key_id),
    )
    return [dict(row) for row in rows]


# -- device list changes ------------------------------------------------------------------------


def add_device_list_change(conn: sqlite3.Connection, user_id: str, stream: int) -> None:
    conn.execute(
        "INSERT INTO device_list_changes (stream, user_id) VALUES (?, ?)", (stream, user_id)
    )


def last_device_list_change(conn: sqlite3.Connection, user_id: str) -> int | None:
    row = conn.execute(
        "SELECT MAX(stream) FROM device_list_changes WHERE user_id = ?", (user_id,)
    ).fetchone()
    return row[0] if row and row[0] is not None else None


def users_with_device_changes(
    conn: sqlite3.Connection, since: int, to: int, users: Iterable[str] | None = None
) -> set[str]:
    """Users whose device list changed at a position in (since, to]."""
    rows = conn.execute(
        "SELECT DISTINCT user_id FROM device_list_changes WHERE stream > ? AND stream <= ?",
        (since, to),
    )
    changed = {row[0] for row in rows}
    return changed if users is None else changed & set(users)


def membership_changes(
    conn: sqlite3.Connection, room_ids: Iterable[str], since: int, to: int
) -> list[tuple[str, str, str]]:
    """(room_id, user_id, membership) of membership rows of `room_ids` that moved in
    (since, to] (table ``room_memberships``, by its stream index: costs the rows that
    moved, not the number of rooms), by room."""
    wanted = set(room_ids)
    rows = conn.execute(
        "SELECT room_id, user_id, membership FROM room_memberships"
        " WHERE stream_ordering > ? AND stream_ordering <= ?",
        (since, to),
    )
    return sorted((row[0], row[1], row[2]) for row in rows if row[0] in wanted)


# -- remote users' device lists -----------------------------------------------------------------


def get_remote_device_list(conn: sqlite3.Connection, user_id: str) -> dict[str, Any] | None:
    """{user_id, stream_id, stale, master_key, self_signing_key, updated_ts, devices:
    [{device_id, display_name, key_json}]} or None when not cached."""
    row = conn.execute("SELECT * FROM remote_device_lists WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return None
    found = dict(row)
    found["devices"] = [
        dict(r)
        for r in conn.execute(
            "SELECT device_id, display_name, key_json FROM remote_devices WHERE user_id = ?"
            " ORDER BY device_id",
            (user_id,),
        )
    ]
    return found


def replace_remote_device_list(
    conn: sqlite3.Connection,
    user_id: str,
    *,
    stream_id: int | None,
    devices: list[tuple[str, str | None, str | None]],
    master_key: str | None,
    self_signing_key: str | None,
    now_ms: int,
) -> None:
    """The whole device list of a remote user, fresh (not stale).
    `devices`: (device_id, display_name, key_json)."""
    conn.execute(
        "INSERT INTO remote_device_lists"
        " (user_id, stream_id, stale, master_key, self_signing_key, updated_ts)"
        " VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " stream_id = excluded.stream_id, stale = 0, master_key = excluded.master_key,"
        " self_signing_key = excluded.self_signing_key, updated_ts = excluded.updated_ts",
        (user_id, stream_id, master_key, self_signing_key, now_ms),
    )
    conn.execute("DELETE FROM remote_devices WHERE user_id = ?", (user_id,))
    conn.executemany(
        "INSERT INTO remote_devices (user_id, device_id, display_name, key_json)"
        " VALUES (?, ?, ?, ?)",
        [(user_id, d, name, keys) for d, name, keys in devices],
    )


def update_remote_device(
    conn: sqlite3.Connection,
    user_id: str,
    device_id: str,
    *,
    stream_id: int,
    display_name: str | None,
    key_json: str | None,
    deleted: bool,
) -> None:
    """Apply one m.device_list_update to a cached list (the caller checked prev_id)."""
    conn.execute(
        "UPDATE remote_device_lists SET stream_id = ? WHERE user_id = ?", (stream_id, user_id)
    )
    if deleted:
        conn.execute(
            "DELETE FROM remote_devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        )
        return
    conn.execute(
        "INSERT INTO remote_devices (user_id, device_id, display_name, key_json)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET"
        " display_name = excluded.display_name, key_json = excluded.key_json",
        (user_id, device_id, display_name, key_json),
    )


def mark_remote_device_list_stale(conn: sqlite3.Connection, user_id: str) -> bool:
    """Mark a cached list stale; False when the user is not cached."""
    cur = conn.execute("UPDATE remote_device_lists SET stale = 1 WHERE user_id = ?", (user_id,))
    return cur.rowcount > 0


def remote_users_of_server(conn: sqlite3.Connection, server_name: str) -> list[str]:
    """Cached remote users of `server_name` (user ids ending in `:server_name`)."""
    rows = conn.execute(
        "SELECT user_id FROM remote_device_lists WHERE substr(user_id, instr(user_id, ':') + 1) = ?"
        " ORDER BY user_id",
        (server_name,),
    )
    return [row[0] for row in rows]
