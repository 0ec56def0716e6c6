"""Content reports (table ``reports``): what users reported, for the operator.

Rules kept:

- A report is a row of its kind (``event``: room and event; ``room``; ``user``), who
  filed it, their reason and (events only) score. Nothing else of the request is kept.
- Newest first when listed; ``delete_report`` is the operator's dismissal.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

__all__ = ["add_report", "count_reports", "delete_report", "get_report", "list_reports"]

Kind = Literal["event", "room", "user"]


def add_report(
    conn: sqlite3.Connection,
    *,
    kind: Kind,
    reporter: str,
    reason: str | None,
    received_ts: int,
    room_id: str | None = None,
    event_id: str | None = None,
    target_user_id: str | None = None,
    score: int | None = None,
) -> int:
    """Store a report; its id."""
    cursor = conn.execute(
        "INSERT INTO reports (kind, room_id, event_id, target_user_id, reporter, reason, score,"
        " received_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, room_id, event_id, target_user_id, reporter, reason, score, received_ts),
    )
    return int(cursor.lastrowid or 0)


def count_reports(
    conn: sqlite3.Connection, kind: Kind | None = None, reporter: str | None = None
) -> int:
    """How many reports there are (of one kind, by one reporter)."""
    where, args = _where(kind, reporter)
    return int(conn.execute(f"SELECT count(*) FROM reports{where}", args).fetchone()[0])


def list_reports(
    conn: sqlite3.Connection, *, kind: Kind | None = None, offset: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """A page of reports, newest first."""
    where, args = _where(kind, None)
    rows = conn.execute(
        f"SELECT * FROM reports{where} ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset)
    )
    return [dict(row) for row in rows]


def get_report(conn: sqlite3.Connection, report_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM reports WHERE id = ?", (report_id,)).fetchone()
    return dict(row) if row is not None else None


def delete_report(conn: sqlite3.Connection, report_id: int) -> bool:
    """Dismiss a report; whether there was one."""
    return conn.execute("DELETE FROM reports WHERE id = ?", (report_id,)).rowcount > 0


def _where(kind: Kind | None, reporter: str | None) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    args: list[Any] = []
    if kind is not None:
        clauses.append("kind = ?")
        args.append(kind)
    if reporter is not None:
        clauses.append("reporter = ?")
        args.append(reporter)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)
