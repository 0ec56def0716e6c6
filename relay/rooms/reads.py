"""Reading rooms as one user may see them: timeline pages, single events, context,
state and members, each filtered by history visibility.

Rules kept:

- Who may read what is relay/rooms/visibility.py's: every read starts from a `Viewer`.
- Timeline pages (/messages, /context) are in topological order, `(depth,
  stream_ordering)`, as Synapse's: an event that arrived late (gap filling, backfill)
  sits where the DAG puts it, not where it arrived. /sync stays in stream order.
- A position sits just after the event it names. `StreamPosition(N)` is a point of the
  store's one stream (a sync token): backwards from it reads the events stored at or
  before N (`so <= N`), forwards the ones stored after (`so > N`), each page in
  topological order. `TopoPosition(depth, stream)` is a point of the topological order;
  one that a page started at a stream position keeps that side of the stream
  (`ceiling`/`floor`), so paging on from a sync token never returns an event /sync
  delivered after it (Synapse drops that bound after the first page; we keep it).
- A redaction that does not apply (yet) is in no timeline and no /event answer
  (`RoomService.held_redaction_txn`), as *handling redactions* asks.
- Everything runs in one read snapshot (`database.read`) and returns Pdus with what a
  client event needs beside them (`EventView`); formatting is the client layer's job.
- A backwards page that reaches a hole in the room's history (an event whose prev
  events we lack: a room joined over federation begins at our join) names the missing
  ids (`Page.gaps`); `messages` has a `HistoryFetcher` (the federation layer's
  /backfill, wired by node.py) fetch them and reads the page again. A fetch that
  fails leaves the page as it is.

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-history-visibility,
https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidmessages
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeVar

from relay.errors import NotFound
from relay.events.pdu import Pdu
from relay.rooms.filters import EventFilter
from relay.rooms.relations import Aggregations, aggregations_txn
from relay.rooms.service import RoomService
from relay.rooms.visibility import (
    StateMap,
    Viewer,
    content_of,
    joined_viewer_txn,
    viewer_txn,
    visible_txn,
)
from store import Connection
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state

Direction = Literal["b", "f"]
T = TypeVar("T")
TopoKey = store_events.TopoKey

#: Rows a page may skip (filtered out or invisible) before it returns short.
MAX_SCANNED = 2_000


NO_FILTER = EventFilter()


def matches(event_filter: EventFilter, pdu: Pdu) -> bool:
    """Does the event pass a RoomEventFilter (rooms, types, senders, contains_url)?"""
    content = pdu.content if event_filter.contains_url is not None else None
    return event_filter.allows_room(pdu.room_id) and event_filter.allows(
        pdu.type, pdu.sender, content
    )


@dataclass(frozen=True, slots=True)
class EventView:
    """An event as one reader gets it, with what its client form needs besides the PDU
    (`view_txn` makes it, for /messages, /context, /event, state reads and /sync alike)."""

    pdu: Pdu
    redacted_by: Pdu | None = None
    #: The reader's own transaction id, when the reader's device sent it.
    txn_id: str | None = None
    #: A state event in a timeline: the content and the id of the state it replaced.
    prev_content: dict[str, Any] | None = None
    replaces_state: str | None = None
    #: Bundled aggregations (`unsigned["m.relations"]`), when it has any.
    relations: Aggregations | None = None


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Just after stream position `stream`: everything stored up to it is behind."""

    stream: int


@dataclass(frozen=True, slots=True)
class TopoPosition:
    """Just after the event at `(depth, stream)` in the room's topological order.

    `ceiling`: only events stored at or before that stream position count (the pages
    began backwards at a stream position); `floor`: only those stored after it (they
    began forwards at one)."""

    depth: int
    stream: int
    ceiling: int | None = None
    floor: int | None = None

    @property
    def key(self) -> TopoKey:
        return (self.depth, self.stream)


Position = StreamPosition | TopoPosition

#: Before every event of a room (Synapse's `t0-0`: depths start at 1).
ROOM_START = TopoPosition(0, 0)


@dataclass(frozen=True, slots=True)
class Page:
    #: Where this page started (`from`, or the end/start of the room when not given).
    start: Position
    events: list[EventView]
    #: Where a next page would continue from; None: nothing more that way.
    end: Position | None
    state: list[EventView]
    #: Backwards: missing events the page reached (where our history has holes).
    gaps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Context:
    event: EventView
    before: list[EventView]
    after: list[EventView]
    start: Position
    end: Position
    state: list[EventView]


# -- decorating events for clients ------------------------------------------------------


#: The state before an event, as (type, state_key) -> event id; None if not recorded.
StateBefore = Callable[[str], Mapping[tuple[str, str], str] | None]


def view_txn(
    conn: Connection,
    rooms: RoomService,
    pdu: Pdu,
    user_id: str,
    device_id: str | None,
    *,
    state_before: StateBefore | None = None,
) -> EventView:
    """The one decoration of an event for a reader: its redaction, the reader's own txn
    id and, given `state_before` (timelines only: it costs a state lookup per event), the
    state a state event replaced (`prev_content`, `replaces_state`, as Synapse sends)."""
    txn_id = None
    if device_id is not None and pdu.sender == user_id:
        txn_id = rooms.txn_id_for_txn(conn, pdu.event_id, user_id, device_id)
    prev_content = replaces = None
    if state_before is not None and pdu.state_key is not None:
        replaces = (state_before(pdu.event_id) or {}).get((pdu.type, pdu.state_key))
        if replaces is not None:
            prev = rooms.get_pdu_txn(conn, replaces)
            prev_content = prev.content if prev is not None else {}
    return EventView(pdu, rooms.redacted_by_txn(conn, pdu.event_id), txn_id, prev_content, replaces)


def decorate_txn(
    conn: Connection,
    rooms: RoomService,
    pdus: Iterable[Pdu],
    user_id: str,
    device_id: str | None,
    *,
    with_prev_content: bool = True,
    viewer: Viewer | None = None,
) -> list[EventView]:
    """`view_txn` of each event, reading the state before each from the store; given the
    `viewer`, with the bundled aggregations (relay/rooms/relations.py)."""

    def state_before(event_id: str) -> dict[tuple[str, str], str] | None:
        return store_state.get_state_before(conn, event_id)

    pdus = list(pdus)
    before = state_before if with_prev_content else None
    views = [view_txn(conn, rooms, p, user_id, device_id, state_before=before) for p in pdus]
    if viewer is None:
        return views
    bundled = aggregations_txn(conn, rooms, viewer, pdus)
    return [replace(v, relations=bundled.get(v.pdu.event_id)) for v in views]


# -- the timeline -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scan:
    pdus: list[Pdu]
    #: The position just past the last row looked at (the next page starts here).
    cursor: Position
    #: No rows are left in the range.
    exhausted: bool
    #: Every event looked at, kept or not.
    scanned: list[str]


@dataclass(frozen=True, slots=True)
class _Range:
    """A scan's range in store terms (see `events_in_room_by_topology`)."""

    from_key: TopoKey | None
    to_key: TopoKey | None
    min_stream: int | None
    max_stream: int | None
    #: The side of the stream the pages keep (carried into the positions handed out).
    ceiling: int | None
    floor: int | None


def _cached(rooms: RoomService, pdu: Pdu) -> Pdu:
    rooms.pdus.put(pdu)
    return pdu


def _lowest(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _highest(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _range(direction: Direction, start: Position, bound: Position | None, viewer: Viewer) -> _Range:
    """From `start` towards `bound` (exclusive for "b", inclusive for "f"), never past
    the viewer's `until`. A stream position bounds the stream, a topological one the
    topological order; a page that began at a stream position keeps its side."""
    if isinstance(start, StreamPosition):
        from_key = None
        ceiling = start.stream if direction == "b" else None
        floor = start.stream if direction == "f" else None
    else:
        from_key, ceiling, floor = start.key, start.ceiling, start.floor
    min_stream, max_stream, to_key = floor, ceiling, None
    if isinstance(bound, StreamPosition):
        if direction == "b":
            min_stream = _highest(min_stream, bound.stream)
        else:
            max_stream = _lowest(max_stream, bound.stream)
    elif isinstance(bound, TopoPosition):
        to_key = bound.key
    # A user who left reads up to their leave, in stream terms as everywhere else.
    max_stream = _lowest(max_stream, viewer.until)
    return _Range(from_key, to_key, min_stream, max_stream, ceiling, floor)


def _rows(
    conn: Connection,
    room_id: str,
    direction: Direction,
    rng: _Range,
    from_key: TopoKey | None,
    limit: int,
) -> list[dict[str, Any]]:
    return store_events.events_in_room_by_topology(
        conn,
        room_id,
        direction=direction,
        from_key=from_key,
        to_key=rng.to_key,
        min_stream=rng.min_stream,
        max_stream=rng.max_stream,
        limit=limit,
    )


def _scan_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    direction: Direction,
    start: Position,
    bound: Position | None,
    limit: int,
    event_filter: EventFilter,
) -> _Scan:
    """Up to `limit` visible, matching events from `start` towards `bound`, in
    topological order (see `_range`)."""
    rng = _range(direction, start, bound, viewer)
    rv = rooms.room_version_txn(conn, viewer.room_id)
    kept: list[Pdu] = []
    cursor: Position = start
    key = rng.from_key
    scanned: list[str] = []
    while len(kept) < limit and len(scanned) < MAX_SCANNED:
        want = max(limit - len(kept), 20)
        rows = _rows(conn, viewer.room_id, direction, rng, key, want)
        batch = [rooms.pdus.get(r["event_id"]) or _cached(rooms, Pdu(r["raw"], rv)) for r in rows]
        visible = {p.event_id: p for p in visible_txn(conn, rooms, viewer, batch)}
        for row, pdu in zip(rows, batch, strict=True):
            scanned.append(pdu.event_id)
            # Backwards, the position just before the row: it reads `<=` from there.
            stream = row["stream_ordering"] - 1 if direction == "b" else row["stream_ordering"]
            key = (row["depth"], stream)
            cursor = TopoPosition(row["depth"], stream, rng.ceiling, rng.floor)
            if (
                pdu.event_id in visible
                and matches(event_filter, pdu)
                and not rooms.held_redaction_txn(conn, pdu)
            ):
                kept.append(visible[pdu.event_id])
                if len(kept) == limit:
                    break
        if len(rows) < want and len(kept) < limit:
            return _Scan(kept, cursor, True, scanned)
    more = _rows(conn, viewer.room_id, direction, rng, key, 1)
    return _Scan(kept, cursor, not more, scanned)


def _gaps_txn(conn: Connection, room_id: str, start: Position, scan: _Scan) -> list[str]:
    """The holes a backwards page reached: missing prevs of the events it looked at;
    once nothing is left locally, also those of any event up to the page's depth
    (Synapse's backfill points), e.g. of our join when the page began just below it."""
    gaps = store_events.backward_extremities(conn, room_id, event_ids=scan.scanned)
    if scan.exhausted:
        max_depth = start.depth if isinstance(start, TopoPosition) else None
        gaps += store_events.backward_extremities(conn, room_id, max_depth=max_depth)
    return list(dict.fromkeys(gaps))


def messages_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    device_id: str | None,
    *,
    direction: Direction,
    start: Position | None,
    bound: Position | None,
    limit: int,
    event_filter: EventFilter,
) -> Page:
    """One /messages page from `start` (None: now for "b", the room's beginning for
    "f"). `end` is None once the range holds nothing more."""
    if start is None and direction == "b":
        start = StreamPosition(store_events.max_stream_ordering(conn))
    elif start is None:
        start = ROOM_START
    scan = _scan_txn(conn, rooms, viewer, direction, start, bound, limit, event_filter)
    events = decorate_txn(conn, rooms, scan.pdus, viewer.user_id, device_id, viewer=viewer)
    state: list[EventView] = []
    if event_filter.lazy_load_members and scan.pdus:
        state = _members_for_senders_txn(conn, rooms, scan.pdus)
    # Backwards, "nothing more" means the start of the room; forwards, the client may
    # still come back later for newer events, so an end is given whenever we moved.
    gaps: tuple[str, ...] = ()
    if direction == "b":
        end = None if scan.exhausted else scan.cursor
        gaps = tuple(_gaps_txn(conn, viewer.room_id, start, scan))
    else:
        end = None if scan.exhausted and scan.cursor == start else scan.cursor
    return Page(start, events, end, state, gaps)


def _members_for_senders_txn(
    conn: Connection, rooms: RoomService, pdus: Iterable[Pdu]
) -> list[EventView]:
    """Lazy-loaded members: each sender's member event as it was when they sent their
    first event of `pdus` (so it carries the name the chunk was written under)."""
    first: dict[str, Pdu] = {}
    for pdu in pdus:
        first.setdefault(pdu.sender, pdu)
    ids = []
    for sender, pdu in first.items():
        if pdu.type == "m.room.member" and pdu.state_key == sender:
            ids.append(pdu.event_id)
            continue
        member_id = (store_state.get_state_before(conn, pdu.event_id) or {}).get(
            ("m.room.member", sender)
        )
        if member_id is not None:
            ids.append(member_id)
    found = rooms.get_pdus_txn(conn, ids)
    return [EventView(found[i]) for i in sorted(found)]


def event_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    device_id: str | None,
    event_id: str,
) -> EventView:
    """One event of the viewer's room. Raises NotFound (unknown or not visible)."""
    row = store_events.get_event_row(conn, event_id)
    pdu = rooms.get_pdu_txn(conn, event_id) if row is not None else None
    seen = visible_txn(conn, rooms, viewer, [pdu]) if pdu is not None else []
    if (
        row is None
        or pdu is None
        or row["room_id"] != viewer.room_id
        or row["rejected_reason"] is not None
        or (viewer.until is not None and row["stream_ordering"] > viewer.until)
        or not seen
        or rooms.held_redaction_txn(conn, pdu)
    ):
        raise NotFound("Event not found.")
    return decorate_txn(conn, rooms, seen, viewer.user_id, device_id, viewer=viewer)[0]


def event_by_timestamp_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    ts: int,
    direction: Direction,
) -> Pdu:
    """The visible event nearest `ts` in `direction`. Raises NotFound."""
    rows = store_events.events_by_timestamp(conn, viewer.room_id, ts, direction, MAX_SCANNED)
    if viewer.until is not None:
        rows = [r for r in rows if r["stream_ordering"] <= viewer.until]
    found = rooms.get_pdus_txn(conn, [r["event_id"] for r in rows])
    pdus = [found[r["event_id"]] for r in rows if r["event_id"] in found]
    visible = visible_txn(conn, rooms, viewer, pdus)
    if not visible:
        where = "forward" if direction == "f" else "backward"
        raise NotFound(f"Unable to find event from {ts} in {where} direction")
    return visible[0]


def context_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    device_id: str | None,
    event_id: str,
    limit: int,
    event_filter: EventFilter,
) -> Context:
    """The event with up to `limit` events around it (half before, rest after)."""
    event = event_txn(conn, rooms, viewer, device_id, event_id)
    row = store_events.get_event_row(conn, event_id)
    assert row is not None
    depth, stream = row["depth"], row["stream_ordering"]
    before_limit = limit // 2
    # Around the event in topological order, as /messages pages from the tokens.
    before = _scan_txn(
        conn, rooms, viewer, "b", TopoPosition(depth, stream - 1), None, before_limit, event_filter
    )
    after = _scan_txn(
        conn,
        rooms,
        viewer,
        "f",
        TopoPosition(depth, stream),
        None,
        limit - before_limit,
        event_filter,
    )
    last = after.pdus[-1] if after.pdus else event.pdu
    if event_filter.lazy_load_members:
        state = _members_for_senders_txn(conn, rooms, [*before.pdus, event.pdu, *after.pdus])
    else:
        ids = (store_state.get_state_after(conn, last.event_id) or {}).values()
        found = rooms.get_pdus_txn(conn, ids)
        state = [EventView(p) for _, p in sorted(found.items()) if matches(event_filter, p)]
    return Context(
        event=event,
        before=decorate_txn(conn, rooms, before.pdus, viewer.user_id, device_id, viewer=viewer),
        after=decorate_txn(conn, rooms, after.pdus, viewer.user_id, device_id, viewer=viewer),
        start=before.cursor,
        end=after.cursor,
        state=state,
    )


def around_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    pdu: Pdu,
    before_limit: int,
    after_limit: int,
) -> tuple[_Scan, _Scan]:
    """Up to `before_limit` visible events before the viewer's stored event `pdu` and
    `after_limit` after it, in topological order as `context_txn` reads them (the
    scans' `pdus` and `cursor`s are the events and the start/end positions)."""
    row = store_events.get_event_row(conn, pdu.event_id)
    assert row is not None
    depth, stream = row["depth"], row["stream_ordering"]
    before = _scan_txn(
        conn, rooms, viewer, "b", TopoPosition(depth, stream - 1), None, before_limit, NO_FILTER
    )
    after = _scan_txn(
        conn, rooms, viewer, "f", TopoPosition(depth, stream), None, after_limit, NO_FILTER
    )
    return before, after


# -- state and members ---------------------------------------------------------------------


def state_ids_txn(
    conn: Connection, rooms: RoomService, viewer: Viewer, at: Position | None = None
) -> StateMap:
    """The state the viewer sees: now, or when they left; with `at`, the state after the
    last event at or before that position (in stream or topological order, as it is)."""
    if at is None and viewer.until is None:
        return store_state.get_current_state(conn, viewer.room_id)
    if at is None:
        assert viewer.until_event_id is not None
        return store_state.get_state_after(conn, viewer.until_event_id) or {}
    if isinstance(at, StreamPosition):
        position = at.stream if viewer.until is None else min(at.stream, viewer.until)
        last = store_events.events_in_room_by_stream(conn, viewer.room_id, position, None, 1, "b")
    else:
        last = store_events.events_in_room_by_topology(
            conn,
            viewer.room_id,
            direction="b",
            from_key=at.key,
            min_stream=at.floor,
            max_stream=_lowest(at.ceiling, viewer.until),
            limit=1,
        )
    if not last:
        return {}
    return store_state.get_state_after(conn, last[0]["event_id"]) or {}


def state_txn(
    conn: Connection, rooms: RoomService, viewer: Viewer, at: Position | None = None
) -> list[EventView]:
    found = rooms.get_pdus_txn(conn, state_ids_txn(conn, rooms, viewer, at).values())
    pdus = sorted(found.values(), key=_state_order)
    return decorate_txn(conn, rooms, pdus, viewer.user_id, None, with_prev_content=False)


def _state_order(pdu: Pdu) -> tuple[str, str]:
    return (pdu.type, pdu.state_key or "")


def state_event_txn(
    conn: Connection, rooms: RoomService, viewer: Viewer, type_: str, state_key: str
) -> EventView:
    """One entry of the viewer's state. Raises NotFound."""
    event_id = state_ids_txn(conn, rooms, viewer).get((type_, state_key))
    pdu = rooms.get_pdu_txn(conn, event_id) if event_id else None
    if pdu is None:
        raise NotFound(f"No {type_} state with key {state_key!r} in this room")
    return decorate_txn(conn, rooms, [pdu], viewer.user_id, None)[0]


def members_txn(
    conn: Connection,
    rooms: RoomService,
    viewer: Viewer,
    *,
    at: Position | None,
    membership: str | None,
    not_membership: str | None,
) -> list[EventView]:
    """Member events of the viewer's state. With both filters, an event is kept if its
    membership is `membership` OR is not `not_membership` (the spec's "or")."""
    state = state_ids_txn(conn, rooms, viewer, at)
    ids = [eid for (type_, _), eid in state.items() if type_ == "m.room.member"]
    found = rooms.get_pdus_txn(conn, ids)
    kept = []
    for pdu in sorted(found.values(), key=_state_order):
        value = pdu.content.get("membership")
        checks = []
        if membership is not None:
            checks.append(value == membership)
        if not_membership is not None:
            checks.append(value != not_membership)
        if not checks or any(checks):
            kept.append(pdu)
    return decorate_txn(conn, rooms, kept, viewer.user_id, None, with_prev_content=False)


def joined_members_txn(
    conn: Connection, rooms: RoomService, viewer: Viewer
) -> dict[str, dict[str, Any]]:
    """`{user_id: {display_name, avatar_url}}` of the currently joined members."""
    joined: dict[str, dict[str, Any]] = {}
    for user_id in store_rooms.joined_users(conn, viewer.room_id):
        content = content_of(
            conn,
            rooms,
            store_state.get_current_state_event_id(conn, viewer.room_id, "m.room.member", user_id),
        )
        joined[user_id] = {
            "display_name": content.get("displayname")
            if isinstance(content.get("displayname"), str)
            else None,
            "avatar_url": content.get("avatar_url")
            if isinstance(content.get("avatar_url"), str)
            else None,
        }
    return joined


# -- the operations the APIs call ----------------------------------------------------------


async def read_as(
    rooms: RoomService,
    user_id: str,
    room_id: str,
    fn: Callable[..., T],
    *args: Any,
    joined: bool = False,
    **kwargs: Any,
) -> T:
    """Run `fn(conn, rooms, viewer, *args, **kwargs)` in one read snapshot, the viewer
    being `user_id` in `room_id` (only while joined, with `joined`). Raises Forbidden."""

    def txn(conn: Connection) -> T:
        check = joined_viewer_txn if joined else viewer_txn
        return fn(conn, rooms, check(conn, rooms, room_id, user_id), *args, **kwargs)

    return await rooms.database.read(txn)


class HistoryFetcher(Protocol):
    """Fetches a room's missing history from other servers (relay/federation/backfill.py)."""

    async def backfill(self, room_id: str, event_ids: Sequence[str], limit: int) -> int:
        """Fetch and store the events `event_ids` and those before them, about `limit`
        in all; how many were stored. Failures are the fetcher's: it never raises."""
        ...


async def messages(
    rooms: RoomService,
    history: HistoryFetcher | None,
    user_id: str,
    room_id: str,
    device_id: str | None,
    *,
    direction: Direction,
    start: Position | None,
    bound: Position | None,
    limit: int,
    event_filter: EventFilter,
) -> Page:
    """One /messages page as `user_id` may read it (see `messages_txn`). Backwards, a
    page that reaches a hole in the history waits for `history` to fill it and is read
    again, as Synapse's /messages backfills in the foreground."""

    async def read() -> Page:
        return await read_as(
            rooms,
            user_id,
            room_id,
            messages_txn,
            device_id,
            direction=direction,
            start=start,
            bound=bound,
            limit=limit,
            event_filter=event_filter,
        )

    page = await read()
    if history is None or not page.gaps:
        return page
    if not await history.backfill(room_id, page.gaps, limit):
        return page
    return await read()


async def joined_rooms(rooms: RoomService, user_id: str) -> list[str]:
    """The rooms the user is joined to, sorted."""
    return await rooms.database.read(store_rooms.rooms_for_user, user_id, "join")
