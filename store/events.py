"""Events and the room DAG (tables ``events``, ``event_edges``, ``event_auth_edges``,
``forward_extremities``, and the ``main`` row of ``stream_positions``).

Rules kept:

- ``raw`` is the signed canonical JSON exactly as hashed and signed; the store never
  parses or re-encodes it. The other columns are copies the caller extracted from it,
  for indexing.
- ``stream_ordering`` comes from ``next_stream_ordering``: one counter shared with
  account data and receipts, strictly increasing, allocated inside the caller's write
  transaction (so a rolled-back write gives its number back). History fetched from
  other servers (backfill) counts down from -1 instead (``next_backfill_stream_ordering``,
  Synapse's convention): it is older than anything a sync token covers, so /sync never
  delivers it as new, and every stream position already has it behind it.
- Rejected, soft-failed and outlier events are stored (peers may ask for them, auth
  chains need them) but the timeline pages leave them out (``events_in_room_by_stream``
  unless asked, ``events_in_room_by_topology`` always).
- Functions take the connection first and never commit (see ``store.db``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from store.batches import id_batches
from store.errors import EventExists

__all__ = [
    "EventExists",
    "backward_extremities",
    "count_events",
    "count_unread",
    "event_exists",
    "events_by_timestamp",
    "events_in_room_by_stream",
    "events_in_room_by_topology",
    "get_auth_event_ids",
    "get_depths",
    "get_event_raw",
    "get_event_row",
    "get_events_raw",
    "get_forward_extremities",
    "get_prev_event_ids",
    "get_stream_orderings",
    "have_events",
    "insert_event",
    "last_event_of_types",
    "max_stream_ordering",
    "next_backfill_stream_ordering",
    "next_stream_ordering",
    "promote_outlier",
    "rejected_event_ids",
    "rooms_with_events_between",
    "senders_outside",
    "set_forward_extremities",
    "state_event_ids_of_type",
    "update_forward_extremities",
]

_META_COLUMNS = (
    "event_id, room_id, type, state_key, sender, origin_server_ts, depth, stream_ordering,"
    " rejected_reason, outlier, soft_failed, received_ts"
)


def next_stream_ordering(conn: sqlite3.Connection) -> int:
    """Allocate the next position of the shared stream. Call inside ``write()``."""
    row = conn.execute(
        "UPDATE stream_positions SET position = position + 1 WHERE stream = 'main'"
        " RETURNING position"
    ).fetchone()
    return int(row[0])


def next_backfill_stream_ordering(conn: sqlite3.Connection) -> int:
    """Allocate a stream ordering for a backfilled event: below every one in use (the
    first is -1). Call inside ``write()``; the one writer keeps it unique."""
    row = conn.execute("SELECT min(stream_ordering) FROM events").fetchone()
    lowest = row[0] if row[0] is not None else 0
    return min(int(lowest), 0) - 1


def max_stream_ordering(conn: sqlite3.Connection) -> int:
    """The last position allocated on the shared stream (0 for an empty database):
    a sync token that covers everything committed so far."""
    row = conn.execute("SELECT position FROM stream_positions WHERE stream = 'main'").fetchone()
    return int(row[0])


def insert_event(
    conn: sqlite3.Connection,
    *,
    event_id: str,
    room_id: str,
    type: str,
    state_key: str | None,
    sender: str,
    origin_server_ts: int,
    depth: int,
    raw: bytes,
    stream_ordering: int,
    prev_event_ids: Sequence[str],
    auth_event_ids: Sequence[str],
    rejected_reason: str | None = None,
    outlier: bool = False,
    soft_failed: bool = False,
    received_ts: int,
) -> None:
    """Store one event and its prev/auth edges. Forward extremities are left to the
    caller (``update_forward_extremities``): outliers and rejected events don't move them.

    Raises:
        EventExists: ``event_id`` is already stored (check ``have_events`` first).
    """
    try:
        conn.execute(
            "INSERT INTO events (event_id, room_id, type, state_key, sender,"
            " origin_server_ts, depth, stream_ordering, raw, rejected_reason, outlier,"
            " soft_failed, received_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                room_id,
                type,
                state_key,
                sender,
                origin_server_ts,
                depth,
                stream_ordering,
                bytes(raw),
                rejected_reason,
                int(outlier),
                int(soft_failed),
                received_ts,
            ),
        )
    except sqlite3.IntegrityError as exc:
        if event_exists(conn, event_id):
            raise EventExists(event_id) from exc
        raise
    conn.executemany(
        "INSERT OR IGNORE INTO event_edges (event_id, prev_event_id) VALUES (?, ?)",
        [(event_id, prev) for prev in prev_event_ids],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO event_auth_edges (event_id, auth_event_id) VALUES (?, ?)",
        [(event_id, auth) for auth in auth_event_ids],
    )


def event_exists(conn: sqlite3.Connection, event_id: str) -> bool:
    """True iff the event is stored (in any state: outlier, rejected, ...)."""
    row = conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone()
    return row is not None


def get_event_raw(conn: sqlite3.Connection, event_id: str) -> bytes | None:
    """The event's signed canonical JSON bytes, or None if not stored."""
    row = conn.execute("SELECT raw FROM events WHERE event_id = ?", (event_id,)).fetchone()
    return bytes(row[0]) if row is not None else None


def get_events_raw(conn: sqlite3.Connection, event_ids: Iterable[str]) -> dict[str, bytes]:
    """``{event_id: raw}`` for those of ``event_ids`` that are stored."""
    found: dict[str, bytes] = {}
    for chunk in id_batches(event_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT event_id, raw FROM events WHERE event_id IN ({marks})", chunk)
        found.update((row[0], bytes(row[1])) for row in rows)
    return found


def rejected_event_ids(conn: sqlite3.Connection, event_ids: Iterable[str]) -> set[str]:
    """Those of ``event_ids`` that are stored and rejected."""
    found: set[str] = set()
    for chunk in id_batches(event_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT event_id FROM events WHERE event_id IN ({marks})"
            " AND rejected_reason IS NOT NULL",
            chunk,
        )
        found.update(row[0] for row in rows)
    return found


def promote_outlier(
    conn: sqlite3.Connection,
    event_id: str,
    *,
    stream_ordering: int,
    soft_failed: bool,
    rejected_reason: str | None,
    received_ts: int,
) -> None:
    """A stored outlier joins the room graph at ``stream_ordering`` (its edges are stored
    already), with the fate its acceptance decided."""
    conn.execute(
        "UPDATE events SET outlier = 0, soft_failed = ?, rejected_reason = ?,"
        " stream_ordering = ?, received_ts = ? WHERE event_id = ?",
        (int(soft_failed), rejected_reason, stream_ordering, received_ts, event_id),
    )


def get_event_row(conn: sqlite3.Connection, event_id: str) -> dict[str, Any] | None:
    """The event's stored metadata (every column but ``raw``; flags as bool), or None."""
    row = conn.execute(
        f"SELECT {_META_COLUMNS} FROM events WHERE event_id = ?", (event_id,)
    ).fetchone()
    if row is None:
        return None
    meta = dict(row)
    meta["outlier"] = bool(meta["outlier"])
    meta["soft_failed"] = bool(meta["soft_failed"])
    return meta


def have_events(conn: sqlite3.Connection, event_ids: Iterable[str]) -> set[str]:
    """The subset of ``event_ids`` that is stored."""
    found: set[str] = set()
    for chunk in id_batches(event_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk)
        found.update(row[0] for row in rows)
    return found


def get_depths(conn: sqlite3.Connection, event_ids: Iterable[str]) -> dict[str, int]:
    """``{event_id: depth}`` for the stored ones (a new event's depth is max + 1)."""
    found: dict[str, int] = {}
    for chunk in id_batches(event_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT event_id, depth FROM events WHERE event_id IN ({marks})", chunk
        )
        found.update((row[0], int(row[1])) for row in rows)
    return found


def get_prev_event_ids(conn: sqlite3.Connection, event_id: str) -> list[str]:
    """The event's prev_events as recorded in ``event_edges`` (sorted)."""
    rows = conn.execute(
        "SELECT prev_event_id FROM event_edges WHERE event_id = ? ORDER BY prev_event_id",
        (event_id,),
    )
    return [row[0] for row in rows]


def get_auth_event_ids(conn: sqlite3.Connection, event_id: str) -> list[str]:
    """The event's auth_events as recorded in ``event_auth_edges`` (sorted)."""
    rows = conn.execute(
        "SELECT auth_event_id FROM event_auth_edges WHERE event_id = ? ORDER BY auth_event_id",
        (event_id,),
    )
    return [row[0] for row in rows]


def get_stream_orderings(conn: sqlite3.Connection, event_ids: Iterable[str]) -> dict[str, int]:
    """``{event_id: stream_ordering}`` for the stored ones."""
    found: dict[str, int] = {}
    for chunk in id_batches(event_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT event_id, stream_ordering FROM events WHERE event_id IN ({marks})", chunk
        )
        found.update((row[0], int(row[1])) for row in rows)
    return found


def backward_extremities(
    conn: sqlite3.Connection,
    room_id: str,
    *,
    event_ids: Iterable[str] | None = None,
    max_depth: int | None = None,
    limit: int = 20,
) -> list[str]:
    """Where the room's known history has holes: ids named as prev_events by its
    timeline events (rejected ones aside) that are stored only as outliers or not at
    all (Synapse's backward extremities). With ``event_ids``, only the prevs of those
    events; with ``max_depth``, only of events at most that deep. Prevs of the deepest
    events first, at most ``limit``."""
    where = [
        "e.outlier = 0",
        "e.rejected_reason IS NULL",
        "(p.event_id IS NULL OR p.outlier = 1)",
    ]
    args: list[Any] = [room_id]
    if max_depth is not None:
        where.append("e.depth <= ?")
        args.append(max_depth)
    chunks: Iterable[list[str] | None] = [None] if event_ids is None else id_batches(event_ids)
    found: dict[str, int] = {}
    for chunk in chunks:
        if chunk is None:
            clause = ["e.room_id = ?", *where]
        else:
            # `+` keeps SQLite off the room indexes: a few primary-key lookups beat
            # walking the whole room, which it would otherwise choose.
            marks = ",".join("?" * len(chunk))
            clause = ["+e.room_id = ?", *where, f"e.event_id IN ({marks})"]
        rows = conn.execute(
            "SELECT ed.prev_event_id, max(e.depth) FROM events e"
            " JOIN event_edges ed ON ed.event_id = e.event_id"
            " LEFT JOIN events p ON p.event_id = ed.prev_event_id"
            f" WHERE {' AND '.join(clause)}"
            " GROUP BY ed.prev_event_id ORDER BY max(e.depth) DESC, ed.prev_event_id LIMIT ?",
            (*args, *(chunk or []), limit),
        )
        for prev, depth in rows:
            found[prev] = max(found.get(prev, depth), depth)
    deepest = sorted(found, key=lambda prev: (-found[prev], prev))
    return deepest[:limit]


def count_unread(
    conn: sqlite3.Connection,
    room_id: str,
    user_id: str,
    after_stream: int,
    to_stream: int,
    types: Sequence[str],
) -> tuple[int, int]:
    """``(count, mentions)``: timeline events of ``types`` from users other than
    ``user_id`` with ``after_stream < stream_ordering <= to_stream``, and how many of
    them name ``user_id`` in ``content["m.mentions"].user_ids``. Edits (``m.replace``
    relations) are not counted."""
    row = conn.execute(
        f"SELECT count(*), coalesce(sum({_MENTIONS}), 0) FROM events WHERE {_notifying(types)}",
        (user_id, room_id, after_stream, to_stream, user_id, *types),
    ).fetchone()
    return int(row[0]), int(row[1])


#: Whether the event names the user (the one `?`) in `content["m.mentions"].user_ids`.
_MENTIONS = (
    "EXISTS (SELECT 1 FROM json_each(CAST(raw AS TEXT),"
    " '$.content.\"m.mentions\".user_ids') WHERE value = ?)"
)


def _notifying(types: Sequence[str]) -> str:
    """The events that notify a user (parameters: room_id, after, up to, the user,
    *types): timeline events of `types` from others, edits left out."""
    marks = ",".join("?" * len(types))
    return (
        "room_id = ? AND stream_ordering > ? AND stream_ordering <= ?"
        f" AND sender != ? AND type IN ({marks})"
        " AND outlier = 0 AND soft_failed = 0 AND rejected_reason IS NULL"
        # Edits never notify (the default push rule .m.rule.suppress_edits).
        " AND NOT EXISTS (SELECT 1 FROM event_relations r"
        " WHERE r.event_id = events.event_id AND r.rel_type = 'm.replace')"
    )


def notifying_events(
    conn: sqlite3.Connection,
    room_id: str,
    user_id: str,
    after_stream: int,
    to_stream: int,
    types: Sequence[str],
    limit: int,
    *,
    mentions_only: bool = False,
) -> list[tuple[str, int, bool]]:
    """``(event_id, stream_ordering, mentions_user)`` of the newest ``limit`` events
    `count_unread` counts (with ``mentions_only``, those that mention the user), newest
    first."""
    where = _notifying(types) + (f" AND {_MENTIONS}" if mentions_only else "")
    args = (room_id, after_stream, to_stream, user_id, *types)
    rows = conn.execute(
        f"SELECT event_id, stream_ordering, {_MENTIONS} FROM events WHERE {where}"
        " ORDER BY stream_ordering DESC LIMIT ?",
        (user_id, *args, *((user_id,) if mentions_only else ()), limit),
    )
    return [(row[0], int(row[1]), bool(row[2])) for row in rows]


#: A timeline event a user may be notified of: in a room the user is joined to now, after
#: the join (or the invite of a room the user is invited to), sent by someone else, neither outlier,
#: soft-failed nor rejected (parameters: user, user, after).
_FOR_USER = (
    "FROM events e JOIN room_memberships m ON m.room_id = e.room_id AND m.user_id = ?"
    " AND ((m.membership = 'join' AND e.stream_ordering > m.stream_ordering)"
    " OR (m.membership = 'invite' AND e.event_id = m.event_id))"
    " WHERE e.sender != ? AND e.stream_ordering > ? AND e.outlier = 0"
    " AND e.soft_failed = 0 AND e.rejected_reason IS NULL"
)


def events_for_user_after(
    conn: sqlite3.Connection, user_id: str, after_stream: int, limit: int
) -> list[tuple[str, int]]:
    """``(event_id, stream_ordering)`` of the oldest ``limit`` events after
    ``after_stream`` that may notify ``user_id`` (others' timeline events in the rooms the
    user is joined to, and the invites the user holds), oldest first: what a pusher has
    still to consider."""
    rows = conn.execute(
        f"SELECT e.event_id, e.stream_ordering {_FOR_USER} ORDER BY e.stream_ordering LIMIT ?",
        (user_id, user_id, after_stream, limit),
    )
    return [(row[0], int(row[1])) for row in rows]


def position_keeping_newest(
    conn: sqlite3.Connection, user_id: str, after_stream: int, keep: int
) -> int | None:
    """The stream position past which only the newest ``keep`` of those events lie, when
    more than ``keep`` lie past ``after_stream``; else None (a backlog's bound)."""
    row = conn.execute(
        f"SELECT e.stream_ordering {_FOR_USER} ORDER BY e.stream_ordering DESC LIMIT 1 OFFSET ?",
        (user_id, user_id, after_stream, keep),
    ).fetchone()
    return int(row[0]) if row is not None else None


def last_event_of_types(
    conn: sqlite3.Connection, room_id: str, types: Sequence[str], max_stream: int
) -> int | None:
    """The stream ordering of the room's newest timeline event of ``types`` stored at or
    before ``max_stream`` (hidden ones left out), or None."""
    marks = ",".join("?" * len(types))
    row = conn.execute(
        "SELECT max(stream_ordering) FROM events WHERE room_id = ? AND stream_ordering <= ?"
        f" AND type IN ({marks}) AND outlier = 0 AND soft_failed = 0"
        " AND rejected_reason IS NULL",
        (room_id, max_stream, *types),
    ).fetchone()
    return int(row[0]) if row[0] is not None else None


def senders_outside(conn: sqlite3.Connection, low: int, high: int) -> list[tuple[str, int]]:
    """``(sender, stream_ordering)`` of every event whose stream ordering is above `high`
    or below `low` (backfilled events count down from 0): what was stored since a
    reader last saw the range ``[low, high]``."""
    rows = conn.execute(
        "SELECT sender, stream_ordering FROM events"
        " WHERE stream_ordering > ? OR stream_ordering < ?",
        (high, low),
    )
    return [(row[0], int(row[1])) for row in rows]


def count_events(conn: sqlite3.Connection) -> int:
    """Number of stored events, outliers and rejected ones included."""
    return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


# Forward extremities -------------------------------------------------------------------


def get_forward_extremities(conn: sqlite3.Connection, room_id: str) -> list[str]:
    """The room's DAG tips (sorted): the prev_events of the next local event."""
    rows = conn.execute(
        "SELECT event_id FROM forward_extremities WHERE room_id = ? ORDER BY event_id",
        (room_id,),
    )
    return [row[0] for row in rows]


def set_forward_extremities(
    conn: sqlite3.Connection, room_id: str, event_ids: Iterable[str]
) -> None:
    """Replace the room's forward extremities with ``event_ids``."""
    conn.execute("DELETE FROM forward_extremities WHERE room_id = ?", (room_id,))
    conn.executemany(
        "INSERT OR IGNORE INTO forward_extremities (room_id, event_id) VALUES (?, ?)",
        [(room_id, event_id) for event_id in event_ids],
    )


def update_forward_extremities(
    conn: sqlite3.Connection, room_id: str, new_event_id: str, prev_event_ids: Iterable[str]
) -> list[str]:
    """Account for a newly stored event: its prevs stop being tips, and it becomes one
    unless a stored event already names it as a prev (it arrived late, e.g. via
    backfill or get_missing_events). Returns the new extremities (sorted)."""
    conn.executemany(
        "DELETE FROM forward_extremities WHERE room_id = ? AND event_id = ?",
        [(room_id, prev) for prev in prev_event_ids],
    )
    # From the event's children (event_edges_prev) to their rows by primary key: `+`
    # keeps SQLite off events_room_stream, which would walk the room's whole history
    # (a cost that grew with every message) to find the usual answer, "none".
    child = conn.execute(
        "SELECT 1 FROM event_edges ed JOIN events e ON e.event_id = ed.event_id"
        " WHERE ed.prev_event_id = ? AND +e.room_id = ? AND e.outlier = 0 LIMIT 1",
        (new_event_id, room_id),
    ).fetchone()
    if child is None:
        conn.execute(
            "INSERT OR IGNORE INTO forward_extremities (room_id, event_id) VALUES (?, ?)",
            (room_id, new_event_id),
        )
    return get_forward_extremities(conn, room_id)


# Pagination ------------------------------------------------------------------------------


def rooms_with_events_between(conn: sqlite3.Connection, since: int, to: int) -> set[str]:
    """Rooms with an event (outliers, rejected and soft-failed ones included) at a stream
    position in ``(since, to]``: walks the stream index over that range only."""
    rows = conn.execute(
        "SELECT room_id FROM events WHERE stream_ordering > ? AND stream_ordering <= ?",
        (since, to),
    )
    return {row[0] for row in rows}


def events_in_room_by_stream(
    conn: sqlite3.Connection,
    room_id: str,
    from_stream: int,
    to_stream: int | None = None,
    limit: int = 100,
    direction: Literal["f", "b"] = "f",
    *,
    include_hidden: bool = False,
) -> list[dict[str, Any]]:
    """A page of the room's timeline in stream order.

    A stream position N sits just after the event with stream_ordering N. Forwards
    (``"f"``): events with ``from_stream < so <= to_stream``, oldest first. Backwards
    (``"b"``): events with ``to_stream < so <= from_stream``, newest first.
    ``to_stream=None`` means no bound. Outliers, rejected and soft-failed events are
    left out unless ``include_hidden``.

    Each item: event_id, stream_ordering, depth, type, state_key, sender, raw.
    """
    if direction not in ("f", "b"):
        raise ValueError(f"direction must be 'f' or 'b', not {direction!r}")
    if limit <= 0:
        return []
    hidden = (
        ""
        if include_hidden
        else (" AND outlier = 0 AND soft_failed = 0 AND rejected_reason IS NULL")
    )
    low: int | None
    high: int | None
    if direction == "f":
        order, low, high = "ASC", from_stream, to_stream
    else:
        order, low, high = "DESC", to_stream, from_stream
    rows = conn.execute(
        "SELECT event_id, stream_ordering, depth, type, state_key, sender, raw FROM events"
        " WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ?"
        f"{hidden} ORDER BY stream_ordering {order} LIMIT ?",
        (
            room_id,
            low if low is not None else -1,
            high if high is not None else 2**63 - 1,
            limit,
        ),
    )
    page = []
    for row in rows:
        item = dict(row)
        item["raw"] = bytes(item["raw"])
        page.append(item)
    return page


#: A place in a room's topological order: ``(depth, stream_ordering)`` of an event.
TopoKey = tuple[int, int]


def events_in_room_by_topology(
    conn: sqlite3.Connection,
    room_id: str,
    *,
    direction: Literal["f", "b"],
    from_key: TopoKey | None = None,
    to_key: TopoKey | None = None,
    min_stream: int | None = None,
    max_stream: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A page of the room's timeline in topological order, ``(depth, stream_ordering)``.

    As with stream positions, a key sits just after the event it names. Forwards
    (``"f"``): events with ``from_key < (depth, so) <= to_key``, oldest first. Backwards
    (``"b"``): events with ``to_key < (depth, so) <= from_key``, newest first. ``None``
    leaves that end open. ``min_stream < so <= max_stream`` bounds the page to the events
    stored in a span of the stream, whatever their depth (a page that started at a sync
    token). Outliers, rejected and soft-failed events are left out.

    Each item: event_id, stream_ordering, depth, type, state_key, sender, raw.
    """
    if direction not in ("f", "b"):
        raise ValueError(f"direction must be 'f' or 'b', not {direction!r}")
    if limit <= 0:
        return []
    order, bounds, bound_args = topological_bounds(
        "", direction, from_key, to_key, min_stream, max_stream, walk_depth_index=True
    )
    where = ["room_id = ?", "outlier = 0", "soft_failed = 0", "rejected_reason IS NULL", *bounds]
    args: list[Any] = [room_id, *bound_args]
    rows = conn.execute(
        "SELECT event_id, stream_ordering, depth, type, state_key, sender, raw FROM events"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY depth {order}, stream_ordering {order} LIMIT ?",
        (*args, limit),
    )
    page = []
    for row in rows:
        item = dict(row)
        item["raw"] = bytes(item["raw"])
        page.append(item)
    return page


def topological_bounds(
    prefix: str,
    direction: Literal["f", "b"],
    from_key: TopoKey | None,
    to_key: TopoKey | None,
    min_stream: int | None,
    max_stream: int | None,
    *,
    walk_depth_index: bool = False,
) -> tuple[str, list[str], list[Any]]:
    """The ORDER direction and the WHERE terms (with their arguments) of a page in
    topological order over the events table aliased `prefix` ("" or "e."): forwards
    ``from_key < (depth, so) <= to_key``, backwards ``to_key < (depth, so) <= from_key``,
    and ``min_stream < so <= max_stream``; None leaves an end open.

    `walk_depth_index`: a query on the events table alone, which SQLite should answer by
    walking events_room_depth_stream between the keys (0009)."""
    if direction == "f":
        order, low, high = "ASC", from_key, to_key
    else:
        order, low, high = "DESC", to_key, from_key
    where: list[str] = []
    args: list[Any] = []
    if low is not None:
        where.append(f"({prefix}depth, {prefix}stream_ordering) > (?, ?)")
        args.extend(low)
    if high is not None:
        where.append(f"({prefix}depth, {prefix}stream_ordering) <= (?, ?)")
        args.extend(high)
    if min_stream is not None:
        where.append(f"{prefix}stream_ordering > ?")
        args.append(min_stream)
    if max_stream is not None:
        # Backwards with only this bound (a first page from a sync token): walk the
        # depth index down from the top and skip the few newer events ("+": not an
        # index key). Searching events_room_stream by it instead sorted the room's
        # whole history for each page.
        open_below = walk_depth_index and direction == "b" and min_stream is None
        term = f"{prefix}stream_ordering <= ?"
        where.append("+" + term if open_below else term)
        args.append(max_stream)
    return order, where, args


def events_by_timestamp(
    conn: sqlite3.Connection,
    room_id: str,
    ts: int,
    direction: Literal["f", "b"],
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Timeline events nearest ``ts``: ``origin_server_ts >= ts`` oldest first (``"f"``)
    or ``<= ts`` newest first (``"b"``); ties in stream order. Outliers, rejected and
    soft-failed events are left out. Each item: event_id, origin_server_ts,
    stream_ordering."""
    if direction == "f":
        where, order = "origin_server_ts >= ?", "ASC"
    else:
        where, order = "origin_server_ts <= ?", "DESC"
    rows = conn.execute(
        "SELECT event_id, origin_server_ts, stream_ordering FROM events"
        f" WHERE room_id = ? AND {where}"
        " AND outlier = 0 AND soft_failed = 0 AND rejected_reason IS NULL"
        f" ORDER BY origin_server_ts {order}, stream_ordering {order} LIMIT ?",
        (room_id, ts, limit),
    )
    return [dict(row) for row in rows]


def state_event_ids_of_type(
    conn: sqlite3.Connection, room_id: str, type: str, *, include_outliers: bool = False
) -> list[str]:
    """Every timeline state event of ``type`` the room ever had (rejected and soft-failed
    ones left out; outliers too unless ``include_outliers``: the state a remote join
    brought, before its history is fetched), oldest first: e.g. all its
    history_visibility changes."""
    outliers = "" if include_outliers else " AND outlier = 0"
    rows = conn.execute(
        "SELECT event_id FROM events WHERE room_id = ? AND type = ? AND state_key IS NOT NULL"
        f" AND soft_failed = 0 AND rejected_reason IS NULL{outliers}"
        " ORDER BY stream_ordering",
        (room_id, type),
    )
    return [row[0] for row in rows]


def member_event_ids_of(
    conn: sqlite3.Connection, room_id: str, user_id: str, after: int, upto: int
) -> list[str]:
    """The ids of the timeline ``m.room.member`` events about ``user_id`` in the room
    with ``after < stream_ordering <= upto`` (rejected and soft-failed ones left out),
    oldest first: a user's membership changes between two syncs."""
    rows = conn.execute(
        "SELECT event_id FROM events WHERE room_id = ? AND type = 'm.room.member'"
        " AND state_key IS NOT NULL AND stream_ordering > ? AND stream_ordering <= ?"
        " AND state_key = ? AND outlier = 0 AND soft_failed = 0 AND rejected_reason IS NULL"
        " ORDER BY stream_ordering",
        (room_id, after, upto, user_id),
    )
    return [row[0] for row in rows]
