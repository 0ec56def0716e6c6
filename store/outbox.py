"""The outbound federation queue and what we know of each destination
(tables ``federation_outbox``, ``federation_destinations``).

Rules kept (DESIGN.md, "Paths of data"):

- The outbox rows *are* the queue: a PDU is enqueued in the same write transaction that
  stores the event, so an acknowledged write is never lost to a crash before sending.
  The sender (``relay/federation/sender.py``, one task per destination) only reads and
  acks; a ``trio.Event`` wakes it, the rows say what to send.
- Per destination, rows go out in ``id`` order. ``peek`` returns a contiguous prefix
  of the backlog holding at most 50 PDUs and 100 EDUs (the spec's per-transaction
  limits), so ``ack(up_to_id)`` deletes exactly what was sent. A sender that sends part
  of a batch first (receipts and typing after messages on a slow link) deletes exactly
  the rows it sent, or dropped, with ``ack_rows``.
  https://spec.matrix.org/v1.16/server-server-api/#transactions
- ``mark_failure`` doubles the retry interval (bounded); ``mark_success`` resets it.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from store.batches import id_batches

__all__ = [
    "ack",
    "ack_rows",
    "depths",
    "destination_status",
    "destinations_with_backlog",
    "enqueue",
    "get_destination",
    "mark_failure",
    "mark_success",
    "note_attempt",
    "peek",
    "queue_summary",
    "reset_backoff",
]

MAX_PDUS = 50
MAX_EDUS = 100
MIN_RETRY_MS = 2_000
MAX_RETRY_MS = 10 * 60 * 1000


def enqueue(
    conn: sqlite3.Connection,
    *,
    destination: str,
    kind: Literal["pdu", "edu"],
    payload: bytes,
    event_id: str | None = None,
    now_ms: int,
) -> int:
    """Queue one PDU (its raw signed JSON) or EDU (its JSON) for ``destination``;
    returns the row id."""
    if kind not in ("pdu", "edu"):
        raise ValueError(f"kind must be 'pdu' or 'edu', not {kind!r}")
    cur = conn.execute(
        "INSERT INTO federation_outbox (destination, kind, event_id, payload, created_ts)"
        " VALUES (?, ?, ?, ?, ?)",
        (destination, kind, event_id, bytes(payload), now_ms),
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def last_id(conn: sqlite3.Connection) -> int:
    """The newest queued row's id (0 when the outbox is empty): a write that queued
    something moved it."""
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM federation_outbox").fetchone()[0])


def peek(
    conn: sqlite3.Connection,
    destination: str,
    *,
    max_pdus: int = MAX_PDUS,
    max_edus: int = MAX_EDUS,
) -> list[dict[str, Any]]:
    """The next batch for ``destination``, oldest first: the longest prefix of its
    backlog with at most ``max_pdus`` PDUs and ``max_edus`` EDUs.

    Each item: id, kind, event_id, payload (bytes), created_ts, attempts.
    """
    rows = conn.execute(
        "SELECT id, kind, event_id, payload, created_ts, attempts FROM federation_outbox"
        " WHERE destination = ? ORDER BY id LIMIT ?",
        (destination, max_pdus + max_edus),
    )
    batch: list[dict[str, Any]] = []
    room = {"pdu": max_pdus, "edu": max_edus}
    for row in rows:
        kind = row["kind"]
        if room[kind] == 0:
            break
        room[kind] -= 1
        item = dict(row)
        item["payload"] = bytes(item["payload"])
        batch.append(item)
    return batch


def ack(conn: sqlite3.Connection, destination: str, up_to_id: int) -> int:
    """Delete ``destination``'s rows with id <= ``up_to_id`` (they were delivered);
    returns how many."""
    return conn.execute(
        "DELETE FROM federation_outbox WHERE destination = ? AND id <= ?",
        (destination, up_to_id),
    ).rowcount


def ack_rows(conn: sqlite3.Connection, destination: str, ids: list[int]) -> int:
    """Delete ``destination``'s rows with these ids (sent, or dropped as stale); returns
    how many."""
    deleted = 0
    for chunk in id_batches(ids):
        marks = ",".join("?" * len(chunk))
        deleted += conn.execute(
            f"DELETE FROM federation_outbox WHERE destination = ? AND id IN ({marks})",
            (destination, *chunk),
        ).rowcount
    return deleted


def note_attempt(conn: sqlite3.Connection, destination: str, up_to_id: int) -> None:
    """Count one more send attempt on ``destination``'s rows with id <= ``up_to_id``."""
    conn.execute(
        "UPDATE federation_outbox SET attempts = attempts + 1 WHERE destination = ? AND id <= ?",
        (destination, up_to_id),
    )


def depths(conn: sqlite3.Connection) -> dict[str, int]:
    """``{destination: queued rows}`` for every destination with a backlog."""
    rows = conn.execute("SELECT destination, count(*) FROM federation_outbox GROUP BY destination")
    return {row[0]: int(row[1]) for row in rows}


def queue_summary(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """``{destination: (queued rows, created_ts of the oldest)}`` for every backlog."""
    rows = conn.execute(
        "SELECT destination, count(*), min(created_ts) FROM federation_outbox GROUP BY destination"
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in rows}


def destinations_with_backlog(conn: sqlite3.Connection) -> list[str]:
    """Destinations with at least one queued row, sorted (the sender starts these)."""
    rows = conn.execute("SELECT DISTINCT destination FROM federation_outbox ORDER BY destination")
    return [row[0] for row in rows]


# Destinations ----------------------------------------------------------------------------


def get_destination(conn: sqlite3.Connection, destination: str) -> dict[str, Any] | None:
    """What we know of one destination (see ``destination_status``), or None."""
    row = conn.execute(
        "SELECT * FROM federation_destinations WHERE destination = ?", (destination,)
    ).fetchone()
    return _destination(row) if row is not None else None


def mark_success(conn: sqlite3.Connection, destination: str, *, now_ms: int) -> None:
    """The destination accepted a transaction: reachable, no failures, no backoff."""
    conn.execute(
        "INSERT INTO federation_destinations (destination, reachable, since_ts,"
        " last_success_ts, last_attempt_ts, retry_interval_ms, failures)"
        " VALUES (?1, 1, ?2, ?2, ?2, 0, 0) ON CONFLICT (destination) DO UPDATE SET"
        " since_ts = CASE WHEN reachable = 1 THEN since_ts ELSE ?2 END,"
        " reachable = 1, last_success_ts = ?2, last_attempt_ts = ?2,"
        " retry_interval_ms = 0, failures = 0",
        (destination, now_ms),
    )


def mark_failure(
    conn: sqlite3.Connection,
    destination: str,
    *,
    now_ms: int,
    min_retry_ms: int = MIN_RETRY_MS,
    max_retry_ms: int = MAX_RETRY_MS,
) -> int:
    """The destination could not be reached: unreachable, one more failure, retry
    interval doubled within ``[min_retry_ms, max_retry_ms]``. Returns the new interval;
    the next attempt is due at ``now_ms + interval``."""
    row = conn.execute(
        "SELECT retry_interval_ms FROM federation_destinations WHERE destination = ?",
        (destination,),
    ).fetchone()
    previous = int(row[0]) if row is not None else 0
    interval = min(max_retry_ms, max(min_retry_ms, previous * 2))
    conn.execute(
        "INSERT INTO federation_destinations (destination, reachable, since_ts,"
        " last_attempt_ts, retry_interval_ms, failures) VALUES (?1, 0, ?2, ?2, ?3, 1)"
        " ON CONFLICT (destination) DO UPDATE SET"
        " since_ts = CASE WHEN reachable = 0 THEN since_ts ELSE ?2 END,"
        " reachable = 0, last_attempt_ts = ?2, retry_interval_ms = ?3,"
        " failures = failures + 1",
        (destination, now_ms, interval),
    )
    return interval


def reset_backoff(conn: sqlite3.Connection, destination: str) -> None:
    """Make the destination due now (e.g. the uplink or an mDNS announcement is back),
    keeping its reachable flag and failure count."""
    conn.execute(
        "UPDATE federation_destinations SET retry_interval_ms = 0 WHERE destination = ?",
        (destination,),
    )


def destination_status(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every known destination and every one with a backlog, sorted by name.

    Each item: destination, reachable (bool), since_ts, last_success_ts,
    last_attempt_ts, retry_interval_ms, failures, next_attempt_ts, backlog.
    """
    rows = conn.execute(
        "SELECT d.*, coalesce(o.backlog, 0) AS backlog FROM federation_destinations AS d"
        " LEFT JOIN (SELECT destination, count(*) AS backlog FROM federation_outbox"
        "            GROUP BY destination) AS o USING (destination)"
        " UNION ALL"
        " SELECT o.destination, 1, NULL, NULL, NULL, 0, 0, count(*) FROM federation_outbox AS o"
        " WHERE o.destination NOT IN (SELECT destination FROM federation_destinations)"
        " GROUP BY o.destination"
        " ORDER BY destination"
    )
    return [_destination(row) for row in rows]


def _destination(row: sqlite3.Row) -> dict[str, Any]:
    status = dict(row)
    status["reachable"] = bool(status["reachable"])
    last = status["last_attempt_ts"]
    status["next_attempt_ts"] = None if last is None else last + status["retry_interval_ms"]
    return status
