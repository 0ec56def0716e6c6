"""Which stored events claim to redact which (table ``redactions``).

Rules kept:

- A row says only "event ``event_id`` is an ``m.room.redaction`` naming ``redacts``": one
  per redaction event, whatever became of it (rejected, soft-failed, outlier), stored with
  it, whether or not the target is stored (a redaction may arrive first). Whether it
  applies is not the store's call: the rooms core asks ``redaction_allowed``
  (relay/events/auth.py) with what ``redactions_of`` (the redactions of one event) or
  ``redaction_row`` (one redaction) returns.
- Functions take the connection first and never commit (see ``store.db``).

Spec: https://spec.matrix.org/v1.16/rooms/v11/#handling-redactions
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["RedactionRow", "insert_redaction", "redaction_row", "redactions_of"]


@dataclass(frozen=True, slots=True)
class RedactionRow:
    """A stored redaction of some event, with its fate."""

    event_id: str
    rejected: bool
    soft_failed: bool


def insert_redaction(conn: sqlite3.Connection, *, event_id: str, redacts: str) -> None:
    """Record that redaction ``event_id`` names ``redacts`` (again: no-op)."""
    conn.execute(
        "INSERT OR IGNORE INTO redactions (event_id, redacts) VALUES (?, ?)",
        (event_id, redacts),
    )


def redactions_of(conn: sqlite3.Connection, event_id: str) -> list[RedactionRow]:
    """The stored redactions naming ``event_id``, oldest first (stream order)."""
    rows = conn.execute(
        f"{_ROWS} WHERE r.redacts = ? ORDER BY e.stream_ordering", (event_id,)
    ).fetchall()
    return [_row(row) for row in rows]


def redaction_row(conn: sqlite3.Connection, event_id: str) -> RedactionRow | None:
    """The stored redaction ``event_id`` with its fate, or None (not a stored redaction)."""
    row = conn.execute(f"{_ROWS} WHERE r.event_id = ?", (event_id,)).fetchone()
    return _row(row) if row is not None else None


#: A stored redaction with its fate (`RedactionRow`'s fields, in order).
_ROWS = (
    "SELECT r.event_id, e.rejected_reason IS NOT NULL, e.soft_failed"
    " FROM redactions r JOIN events e ON e.event_id = r.event_id"
)


def _row(row: tuple[str, int, int]) -> RedactionRow:
    return RedactionRow(row[0], bool(row[1]), bool(row[2]))
