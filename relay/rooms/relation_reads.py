"""Reading relations as one user may see them: `/relations` pages and the `/threads`
list, in one read snapshot, returning `EventView`s (bundled aggregations attached).

Rules kept (Synapse's `RelationsHandler`, the spec's relations.yaml and threads_list.yaml):

- The reader must be able to read the room (`viewer_txn`: joined, departed up to their
  leave, or world_readable), and to see the parent event (else 404 "Unknown parent
  event", M_UNKNOWN as Synapse answers).
- Each page is in topological order, `(depth, stream_ordering)`, backwards by default;
  children the reader may not see (history visibility, past their leave) and redacted
  ones are left out, and so are held redactions (relay/rooms/reads.py).
- `recurse` follows relations of relations three levels down (Synapse's depth); the
  rel_type/event_type filters apply to the events returned, not to the path.
- `/threads` lists thread roots, the thread with the newest reply first; `participated`
  keeps those the reader started or replied in. Roots the reader may not see are left
  out.

Spec: https://spec.matrix.org/v1.16/client-server-api/#relationship-types,
https://spec.matrix.org/v1.16/client-server-api/#threading
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from relay.errors import NotFound, Unknown
from relay.events.pdu import Pdu
from relay.rooms.reads import (
    EventView,
    Position,
    StreamPosition,
    TopoPosition,
    decorate_txn,
    event_txn,
)
from relay.rooms.service import RoomService
from relay.rooms.visibility import Viewer, visible_txn
from store import Connection
from store import relations as store_relations
from store.events import TopoKey

#: How deep `recurse` follows relations of relations (Synapse's).
RECURSION_DEPTH = 3
#: Rows a page may skip (invisible or redacted) before it returns short.
MAX_SCANNED = 2_000

Direction = Literal["b", "f"]


@dataclass(frozen=True, slots=True)
class RelationsPage:
    events: list[EventView]
    #: Where the next page continues; None: nothing more that way.
    next: Position | None
    recursion_depth: int | None


@dataclass(frozen=True, slots=True)
class ThreadsPage:
    roots: list[EventView]
    #: The activity key (depth, stream) the next page starts below; None: no more.
    next: tuple[int, int] | None


def _bounds(
    direction: Direction, start: Position | None, bound: Position | None, viewer: Viewer
) -> tuple[tuple[int, int] | None, tuple[int, int] | None, int | None, int | None]:
    """(from_key, to_key, min_stream, max_stream) of a page, as /messages reads tokens."""
    from_key = to_key = min_stream = max_stream = None
    for position, is_start in ((start, True), (bound, False)):
        if isinstance(position, TopoPosition):
            if is_start:
                from_key = position.key
            else:
                to_key = position.key
        elif isinstance(position, StreamPosition):
            # Backwards from a stream position: what was stored up to it; forwards, after.
            if (direction == "b") == is_start:
                max_stream = position.stream
            else:
                min_stream = position.stream
    if viewer.until is not None:
        max_stream = viewer.until if max_stream is None else min(max_stream, viewer.until)
    return from_key, to_key, min_stream, max_stream


def relations_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    device_id: str | None,
    parent_id: str,
    *,
    rel_type: str | None,
    event_type: str | None,
    direction: Direction,
    start: Position | None,
    bound: Position | None,
    limit: int,
    recurse: bool,
) -> RelationsPage:
    """One /relations page of `parent_id` (see the module docstring)."""
    try:
        event_txn(conn, rooms, viewer, None, parent_id)
    except NotFound:
        raise Unknown("Unknown parent event.", status=404) from None
    from_key, to_key, min_stream, max_stream = _bounds(direction, start, bound, viewer)
    rv = rooms.room_version_txn(conn, viewer.room_id)

    def page(after: TopoKey | None, size: int) -> list[dict[str, Any]]:
        return store_relations.relations_page(
            conn,
            viewer.room_id,
            parent_id,
            rel_type=rel_type,
            event_type=event_type,
            direction=direction,
            from_key=after,
            to_key=to_key,
            min_stream=min_stream,
            max_stream=max_stream,
            limit=size,
            max_depth=RECURSION_DEPTH if recurse else 1,
        )

    kept: list[Pdu] = []
    cursor: Position | None = None
    scanned = 0
    exhausted = False
    while len(kept) < limit and scanned < MAX_SCANNED:
        want = max(limit - len(kept), 20)
        rows = page(from_key, want)
        pdus = [rooms.pdus.get(r["event_id"]) or Pdu(r["raw"], rv) for r in rows]
        visible = {p.event_id for p in visible_txn(conn, rooms, viewer, pdus)}
        for row, pdu in zip(rows, pdus, strict=True):
            scanned += 1
            stream = row["stream_ordering"] - 1 if direction == "b" else row["stream_ordering"]
            from_key = (row["depth"], stream)
            cursor = TopoPosition(row["depth"], stream)
            redacted = row["redaction_claimed"] and rooms.redacted_by_txn(conn, pdu.event_id)
            if pdu.event_id in visible and not redacted and not rooms.held_redaction_txn(conn, pdu):
                kept.append(pdu)
                if len(kept) == limit:
                    break
        if len(rows) < want and len(kept) < limit:
            exhausted = True
            break
    if not exhausted and len(kept) == limit:
        more = page(from_key, 1)
        exhausted = not more
    events = decorate_txn(conn, rooms, kept, viewer.user_id, device_id, viewer=viewer)
    return RelationsPage(
        events, None if exhausted else cursor, RECURSION_DEPTH if recurse else None
    )


def threads_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    device_id: str | None,
    *,
    participated: bool,
    before: tuple[int, int] | None,
    limit: int,
) -> ThreadsPage:
    """One /threads page (see the module docstring)."""
    rows = store_relations.thread_roots_page(
        conn,
        viewer.room_id,
        participant=viewer.user_id if participated else None,
        before=before,
        max_stream=viewer.until,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    found = rooms.get_pdus_txn(conn, [row["root_id"] for row in rows])
    roots = [found[row["root_id"]] for row in rows if row["root_id"] in found]
    roots = [pdu for pdu in roots if pdu.room_id == viewer.room_id]
    roots = visible_txn(conn, rooms, viewer, roots)
    events = decorate_txn(conn, rooms, roots, viewer.user_id, device_id, viewer=viewer)
    last = (rows[-1]["depth"], rows[-1]["stream_ordering"]) if rows and more else None
    return ThreadsPage(events, last)
