"""Pushers (table ``pushers``): where a user's notifications are pushed, and how far each
pusher's deliveries got.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#push-notifications):

- A pusher is keyed by (user, app_id, pushkey): setting it again updates it, keeping the
  device that first set it (Synapse keeps it too: one device may edit another's pusher).
- It belongs to that device and is deleted with it by the schema (a foreign key with
  ``ON DELETE CASCADE``): logout, device deletion, a password change that logs the other
  devices out and deactivation all remove it, with no code of their own.
- ``last_stream_ordering`` is where deliveries got: events after it are still to push. A
  new pusher starts at the stream's head: it pushes what happens from then on.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

_COLUMNS = (
    "user_id, app_id, pushkey, device_id, kind, app_display_name, device_display_name,"
    " profile_tag, lang, data, pushkey_ts, last_stream_ordering"
)


@dataclass(frozen=True, slots=True)
class Pusher:
    user_id: str
    app_id: str
    pushkey: str
    device_id: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str
    lang: str | None
    data: dict[str, Any]
    #: When the pushkey was set, in milliseconds.
    pushkey_ts: int
    last_stream_ordering: int


def _pusher(row: sqlite3.Row | tuple[Any, ...]) -> Pusher:
    values = list(row)
    values[9] = json.loads(values[9])
    return Pusher(*values)


def set_pusher(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    app_id: str,
    pushkey: str,
    device_id: str,
    kind: str,
    app_display_name: str,
    device_display_name: str,
    profile_tag: str,
    lang: str | None,
    data: dict[str, Any],
    now_ms: int,
    stream_ordering: int,
) -> None:
    """Add the pusher, or update the one with the same (user, app_id, pushkey): its device
    stays the one that first set it."""
    conn.execute(
        f"INSERT INTO pushers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind,"
        " app_display_name = excluded.app_display_name,"
        " device_display_name = excluded.device_display_name,"
        " profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data,"
        " pushkey_ts = excluded.pushkey_ts",
        (
            user_id,
            app_id,
            pushkey,
            device_id,
            kind,
            app_display_name,
            device_display_name,
            profile_tag,
            lang,
            json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            now_ms,
            stream_ordering,
        ),
    )


def delete_pusher(conn: sqlite3.Connection, user_id: str, app_id: str, pushkey: str) -> bool:
    """Delete the user's pusher; False if there was none."""
    cur = conn.execute(
        "DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
        (user_id, app_id, pushkey),
    )
    return cur.rowcount > 0


def delete_pushers_of_other_users(
    conn: sqlite3.Connection, app_id: str, pushkey: str, user_id: str
) -> int:
    """Delete the pushers with this app_id and pushkey of every user but `user_id` (a
    device's pushkey now pushes for one user only); how many."""
    return conn.execute(
        "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?",
        (app_id, pushkey, user_id),
    ).rowcount


def pushers_of_user(conn: sqlite3.Connection, user_id: str) -> list[Pusher]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey", (user_id,)
    )
    return [_pusher(row) for row in rows]


def pushers_of_kind(conn: sqlite3.Connection, kind: str) -> list[Pusher]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM pushers WHERE kind = ? ORDER BY user_id, app_id, pushkey",
        (kind,),
    )
    return [_pusher(row) for row in rows]


def get_pusher(conn: sqlite3.Connection, user_id: str, app_id: str, pushkey: str) -> Pusher | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
        (user_id, app_id, pushkey),
    ).fetchone()
    return _pusher(row) if row is not None else None


def advance_pusher(
    conn: sqlite3.Connection, user_id: str, app_id: str, pushkey: str, stream_ordering: int
) -> None:
    """The pusher's deliveries got to `stream_ordering` (never moves back)."""
    conn.execute(
        "UPDATE pushers SET last_stream_ordering = max(last_stream_ordering, ?)"
        " WHERE user_id = ? AND app_id = ? AND pushkey = ?",
        (stream_ordering, user_id, app_id, pushkey),
    )
