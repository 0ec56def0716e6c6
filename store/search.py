"""The full-text index of room events (tables ``event_search_docs`` and the FTS5 table
``event_search``, the event_search migration).

Rules kept:

- One document per searchable event: ``event_search_docs`` names the event, its room and
  the key its text came from (``content.body``, ``content.name``, ``content.topic``);
  ``event_search`` holds the text under the same rowid. What is searchable is the rooms
  core's call (relay/rooms/search_index.py); the store only keeps and finds.
- A search is one FTS5 ``MATCH`` (the query is built by relay/rooms/search.py from the
  user's words, each quoted, so no user text is FTS syntax), joined to ``events`` for the
  order and to leave out what is in no timeline (outliers, soft-failed, rejected). Pages
  stop at their ``LIMIT``; ``recent`` pages continue below ``(origin_server_ts,
  stream_ordering)`` of the last hit handed out.
- Rooms are named ``IN (...)`` when there are at most ``BATCH_SIZE`` of them; a user in
  more rooms gets the hits of every room and the caller keeps its own (as Synapse does).
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from store.batches import BATCH_SIZE

__all__ = [
    "SearchHit",
    "count_matches",
    "delete_search_entry",
    "insert_search_entry",
    "search_by_rank",
    "search_by_recent",
]


@dataclass(frozen=True, slots=True)
class SearchHit:
    event_id: str
    room_id: str
    #: FTS5's bm25 score, negated: higher is closer.
    rank: float
    origin_server_ts: int
    stream_ordering: int


def insert_search_entry(
    conn: sqlite3.Connection, *, event_id: str, room_id: str, key: str, value: str
) -> None:
    """Index the text `value` of event `event_id` under `key` (again: no-op)."""
    row = conn.execute(
        "INSERT OR IGNORE INTO event_search_docs (event_id, room_id, key) VALUES (?, ?, ?)"
        " RETURNING doc",
        (event_id, room_id, key),
    ).fetchone()
    if row is not None:
        conn.execute(
            "INSERT INTO event_search (rowid, value) VALUES (?, ?)",
            (row[0], value.replace("\0", " ")),
        )


def delete_search_entry(conn: sqlite3.Connection, event_id: str) -> None:
    """Drop the event's document, if it has one: it can be found no more."""
    row = conn.execute(
        "DELETE FROM event_search_docs WHERE event_id = ? RETURNING doc", (event_id,)
    ).fetchone()
    if row is not None:
        conn.execute("DELETE FROM event_search WHERE rowid = ?", (row[0],))


_HITS = (
    "SELECT d.event_id, d.room_id, -bm25(event_search) AS score, e.origin_server_ts,"
    " e.stream_ordering"
    " FROM event_search"
    " CROSS JOIN event_search_docs d ON d.doc = event_search.rowid"
    " CROSS JOIN events e ON e.event_id = d.event_id"
)
_IN_TIMELINE = "e.outlier = 0 AND e.soft_failed = 0 AND e.rejected_reason IS NULL"


def _where(
    match: str, room_ids: Collection[str], keys: Sequence[str]
) -> tuple[list[str], list[Any]]:
    clauses = ["event_search MATCH ?", f"d.key IN ({', '.join('?' * len(keys))})"]
    args: list[Any] = [match, *keys]
    if len(room_ids) <= BATCH_SIZE:
        clauses.append(f"d.room_id IN ({', '.join('?' * len(room_ids))})")
        args.extend(room_ids)
    return clauses, args


def _hits(rows: list[Any], room_ids: Collection[str]) -> list[SearchHit]:
    wanted = set(room_ids)
    return [SearchHit(*row) for row in rows if row[1] in wanted]


def search_by_rank(
    conn: sqlite3.Connection,
    match: str,
    room_ids: Collection[str],
    keys: Sequence[str],
    limit: int,
) -> list[SearchHit]:
    """The best `limit` hits of the FTS5 query `match`, closest first."""
    clauses, args = _where(match, room_ids, keys)
    rows = conn.execute(
        f"{_HITS} WHERE {' AND '.join(clauses)} AND {_IN_TIMELINE}"
        " ORDER BY score DESC, e.stream_ordering LIMIT ?",
        (*args, limit),
    ).fetchall()
    return _hits(rows, room_ids)


def search_by_recent(
    conn: sqlite3.Connection,
    match: str,
    room_ids: Collection[str],
    keys: Sequence[str],
    limit: int,
    before: tuple[int, int] | None = None,
) -> list[SearchHit]:
    """Up to `limit` hits of `match`, newest first by (origin_server_ts,
    stream_ordering), all below `before` when given."""
    clauses, args = _where(match, room_ids, keys)
    if before is not None:
        clauses.append(
            "(e.origin_server_ts < ? OR (e.origin_server_ts = ? AND e.stream_ordering < ?))"
        )
        args.extend([before[0], before[0], before[1]])
    rows = conn.execute(
        f"{_HITS} WHERE {' AND '.join(clauses)} AND {_IN_TIMELINE}"
        " ORDER BY e.origin_server_ts DESC, e.stream_ordering DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return _hits(rows, room_ids)


def count_matches(
    conn: sqlite3.Connection, match: str, room_ids: Collection[str], keys: Sequence[str]
) -> int:
    """How many events of the rooms match (before anyone's visibility: the spec's
    "approximate count")."""
    clauses, args = _where(match, room_ids, keys)
    if len(room_ids) <= BATCH_SIZE:
        row = conn.execute(
            "SELECT count(*) FROM event_search"
            " CROSS JOIN event_search_docs d ON d.doc = event_search.rowid"
            f" WHERE {' AND '.join(clauses)}",
            args,
        ).fetchone()
        return int(row[0])
    rows = conn.execute(
        "SELECT d.room_id, count(*) FROM event_search"
        " CROSS JOIN event_search_docs d ON d.doc = event_search.rowid"
        f" WHERE {' AND '.join(clauses)} GROUP BY d.room_id",
        args,
    ).fetchall()
    wanted = set(room_ids)
    return sum(int(n) for room, n in rows if room in wanted)
