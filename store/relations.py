"""Which event relates to which (table ``event_relations``, migration 0013).

Rules kept:

- A row says only "event ``event_id`` declares relation ``rel_type`` to
  ``relates_to_id``" (relay/events/relations.py decides what a relation is); it is stored
  with the event, whatever the event's fate, and whether or not the parent is stored.
- Readers return only timeline events (outliers, rejected and soft-failed left out) of
  the given room, and flag each row that some stored redaction names
  (``redaction_claimed``): whether it applies is the rooms core's call, not the store's.
- Pages are in the room's topological order, ``(depth, stream_ordering)``; a key sits
  just after the event it names, as in ``store.events.events_in_room_by_topology``.
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from store.batches import id_batches
from store.events import TopoKey, topological_bounds

__all__ = [
    "annotations_by",
    "count_unread_by_thread",
    "declares_relation",
    "has_relations",
    "insert_relation",
    "relation_children",
    "relations_page",
    "thread_roots_page",
]

_VISIBLE = "e.outlier = 0 AND e.soft_failed = 0 AND e.rejected_reason IS NULL"
_CLAIMED = "EXISTS (SELECT 1 FROM redactions d WHERE d.redacts = e.event_id)"


def insert_relation(
    conn: sqlite3.Connection,
    *,
    event_id: str,
    room_id: str,
    relates_to_id: str,
    rel_type: str,
    aggregation_key: str | None,
) -> None:
    """Record that ``event_id`` relates to ``relates_to_id`` (again: no-op)."""
    conn.execute(
        "INSERT OR IGNORE INTO event_relations"
        " (event_id, room_id, relates_to_id, rel_type, aggregation_key) VALUES (?, ?, ?, ?, ?)",
        (event_id, room_id, relates_to_id, rel_type, aggregation_key),
    )


def relations_page(
    conn: sqlite3.Connection,
    room_id: str,
    parent_id: str,
    *,
    rel_type: str | None,
    event_type: str | None,
    direction: Literal["f", "b"],
    from_key: TopoKey | None,
    to_key: TopoKey | None,
    min_stream: int | None,
    max_stream: int | None,
    limit: int,
    max_depth: int = 1,
) -> list[dict[str, Any]]:
    """A page of the events relating to ``parent_id`` (with ``max_depth`` > 1, also to
    those, recursively, that many levels down), filtered by ``rel_type``/``event_type``.
    Forwards (``"f"``): ``from_key < (depth, so) <= to_key``, oldest first; backwards,
    ``to_key < (depth, so) <= from_key``, newest first; ``min_stream < so <= max_stream``.

    Each item: event_id, depth, stream_ordering, raw, redaction_claimed."""
    if limit <= 0:
        return []
    order, bounds, bound_args = topological_bounds(
        "e.", direction, from_key, to_key, min_stream, max_stream
    )
    where = ["e.room_id = ?", _VISIBLE]
    args: list[Any] = [room_id]
    if rel_type is not None:
        where.append("r.rel_type = ?")
        args.append(rel_type)
    if event_type is not None:
        where.append("e.type = ?")
        args.append(event_type)
    where += bounds
    args += bound_args
    rows = conn.execute(
        "WITH RECURSIVE related(event_id, level) AS ("
        " SELECT event_id, 1 FROM event_relations WHERE relates_to_id = ?"
        " UNION SELECT c.event_id, related.level + 1 FROM event_relations c"
        " JOIN related ON c.relates_to_id = related.event_id WHERE related.level < ?)"
        f" SELECT DISTINCT e.event_id, e.depth, e.stream_ordering, e.raw, {_CLAIMED}"
        " FROM related JOIN event_relations r ON r.event_id = related.event_id"
        " JOIN events e ON e.event_id = r.event_id"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY e.depth {order}, e.stream_ordering {order} LIMIT ?",
        (parent_id, max_depth, *args, limit),
    )
    return [
        {
            "event_id": row[0],
            "depth": int(row[1]),
            "stream_ordering": int(row[2]),
            "raw": bytes(row[3]),
            "redaction_claimed": bool(row[4]),
        }
        for row in rows
    ]


def relation_children(
    conn: sqlite3.Connection,
    room_id: str,
    parent_ids: Iterable[str],
    rel_type: str,
    *,
    max_stream: int | None = None,
) -> list[dict[str, Any]]:
    """Every timeline event of the room relating to one of ``parent_ids`` by
    ``rel_type`` (up to ``max_stream``), in topological order.

    Each item: parent_id, event_id, sender, type, origin_server_ts, depth,
    stream_ordering, redaction_claimed."""
    found: list[dict[str, Any]] = []
    bound = "" if max_stream is None else " AND e.stream_ordering <= ?"
    for chunk in id_batches(parent_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT r.relates_to_id, e.event_id, e.sender, e.type, e.origin_server_ts,"
            f" e.depth, e.stream_ordering, {_CLAIMED}"
            " FROM event_relations r JOIN events e ON e.event_id = r.event_id"
            # "+e.room_id": start from the parents (event_relations_parent), never from
            # the room's history, which the planner picks when the table is small.
            f" WHERE r.relates_to_id IN ({marks}) AND r.rel_type = ? AND +e.room_id = ?"
            f" AND {_VISIBLE}{bound}",
            (*chunk, rel_type, room_id, *([] if max_stream is None else [max_stream])),
        )
        for row in rows:
            found.append(
                {
                    "parent_id": row[0],
                    "event_id": row[1],
                    "sender": row[2],
                    "type": row[3],
                    "origin_server_ts": int(row[4]),
                    "depth": int(row[5]),
                    "stream_ordering": int(row[6]),
                    "redaction_claimed": bool(row[7]),
                }
            )
    found.sort(key=lambda item: (item["depth"], item["stream_ordering"]))
    return found


def thread_roots_page(
    conn: sqlite3.Connection,
    room_id: str,
    *,
    participant: str | None,
    before: TopoKey | None,
    max_stream: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Thread roots of the room, the most recently active thread first: each root's
    activity is its newest reply's ``(depth, stream_ordering)``; only threads whose
    activity is below ``before`` (a key from the previous page). With ``participant``,
    only threads that user started or replied in.

    Each item: root_id, depth, stream_ordering (of the newest reply)."""
    where = ["r.room_id = ?", "r.rel_type = 'm.thread'", _VISIBLE]
    args: list[Any] = [room_id]
    if max_stream is not None:
        where.append("e.stream_ordering <= ?")
        args.append(max_stream)
    outer = ["place = 1"]
    outer_args: list[Any] = []
    if before is not None:
        outer.append("(depth, stream_ordering) < (?, ?)")
        outer_args.extend(before)
    if participant is not None:
        outer.append(
            "(EXISTS (SELECT 1 FROM events root WHERE root.event_id = newest.relates_to_id"
            " AND root.sender = ?) OR EXISTS (SELECT 1 FROM event_relations p"
            " JOIN events pe ON pe.event_id = p.event_id"
            " WHERE p.relates_to_id = newest.relates_to_id AND p.rel_type = 'm.thread'"
            " AND pe.sender = ? AND pe.outlier = 0 AND pe.soft_failed = 0"
            " AND pe.rejected_reason IS NULL))"
        )
        outer_args.extend([participant, participant])
    # The newest reply is the deepest one, ties to the later stored (stream order).
    rows = conn.execute(
        "SELECT relates_to_id, depth, stream_ordering FROM ("
        " SELECT r.relates_to_id, e.depth, e.stream_ordering,"
        " row_number() OVER (PARTITION BY r.relates_to_id"
        " ORDER BY e.depth DESC, e.stream_ordering DESC) AS place"
        " FROM event_relations r JOIN events e ON e.event_id = r.event_id"
        f" WHERE {' AND '.join(where)}) AS newest WHERE {' AND '.join(outer)}"
        " ORDER BY depth DESC, stream_ordering DESC LIMIT ?",
        (*args, *outer_args, limit),
    )
    return [
        {"root_id": row[0], "depth": int(row[1]), "stream_ordering": int(row[2])} for row in rows
    ]


def annotations_by(
    conn: sqlite3.Connection, parent_id: str, sender: str, type: str, key: str
) -> list[dict[str, Any]]:
    """The timeline annotations ``sender`` made on ``parent_id`` with event type
    ``type`` and key ``key`` (to refuse a duplicate reaction).

    Each item: event_id, redaction_claimed."""
    rows = conn.execute(
        f"SELECT e.event_id, {_CLAIMED} FROM event_relations r"
        " JOIN events e ON e.event_id = r.event_id"
        " WHERE r.relates_to_id = ? AND r.rel_type = 'm.annotation' AND r.aggregation_key = ?"
        f" AND e.sender = ? AND e.type = ? AND {_VISIBLE}",
        (parent_id, key, sender, type),
    )
    return [{"event_id": row[0], "redaction_claimed": bool(row[1])} for row in rows]


def count_unread_by_thread(
    conn: sqlite3.Connection,
    room_id: str,
    user_id: str,
    after_stream: int,
    to_stream: int,
    types: Sequence[str],
    *,
    thread: str | None = None,
) -> dict[str, tuple[int, int]]:
    """``{thread root ('' = main timeline): (count, mentions)}`` of the timeline events of
    ``types`` from users other than ``user_id`` with ``after_stream < so <= to_stream``
    (only of ``thread`` when given); mentions name ``user_id`` in
    ``content["m.mentions"].user_ids``. Edits are not counted (they never notify);
    threads with nothing to count are left out."""
    marks = ",".join("?" * len(types))
    only = "" if thread is None else " AND coalesce(r.relates_to_id, '') = ?"
    rows = conn.execute(
        "SELECT coalesce(r.relates_to_id, ''), count(*),"
        " coalesce(sum(EXISTS (SELECT 1 FROM json_each(CAST(e.raw AS TEXT),"
        " '$.content.\"m.mentions\".user_ids') WHERE value = ?)), 0)"
        " FROM events e LEFT JOIN event_relations r"
        " ON r.event_id = e.event_id AND r.rel_type = 'm.thread'"
        " WHERE e.room_id = ? AND e.stream_ordering > ? AND e.stream_ordering <= ?"
        f" AND e.sender != ? AND e.type IN ({marks}) AND {_VISIBLE}{only}"
        " AND NOT EXISTS (SELECT 1 FROM event_relations x"
        " WHERE x.event_id = e.event_id AND x.rel_type = 'm.replace')"
        " GROUP BY coalesce(r.relates_to_id, '')",
        (
            user_id,
            room_id,
            after_stream,
            to_stream,
            user_id,
            *types,
            *([] if thread is None else [thread]),
        ),
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in rows}


def has_relations(conn: sqlite3.Connection, parent_id: str) -> bool:
    """Does any stored event relate to ``parent_id``?"""
    row = conn.execute(
        "SELECT 1 FROM event_relations WHERE relates_to_id = ? LIMIT 1", (parent_id,)
    ).fetchone()
    return row is not None


def declares_relation(conn: sqlite3.Connection, event_id: str) -> bool:
    """Does the stored event ``event_id`` relate to another event?"""
    row = conn.execute("SELECT 1 FROM event_relations WHERE event_id = ?", (event_id,)).fetchone()
    return row is not None
