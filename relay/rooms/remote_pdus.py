"""Accepting PDUs that other servers wrote into the room graph.

The caller (the federation layer) has already checked the PDU's content hash
and signatures, and fetched its auth events and, where it could, its prev
events. Here, in one write transaction per PDU, following the spec's checks
on receipt of a PDU:

1. auth against the event's own auth events -> else stored as *rejected*;
2. auth against the state before the event (the state after its prev events,
   resolved when there are several) -> else *rejected*;
3. auth against the room's current state -> else *soft-failed*: stored, part
   of the DAG, but not shown to clients and not a forward extremity;
4. stored with its state; the forward extremities move and the current state is
   re-resolved over them.

History fetched with /backfill (`backfilled=True`) is older than what we have: it skips
step 3 (an old message of someone who has left since is no less genuine), gets a
stream ordering below all others (store/events.py) and moves neither the forward
extremities nor the current state, as in Synapse.

Rejected events are kept (so we never fetch them again) and never served as
part of the room.

Spec: https://spec.matrix.org/v1.16/server-server-api/#checks-performed-on-receipt-of-a-pdu
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from relay.events.auth import AuthError, auth_types_for_event, check_auth, check_auth_events
from relay.events.ids import create_event_id_of
from relay.events.pdu import Pdu
from relay.events.room_versions import RoomVersion
from relay.events.state_res import resolve_state
from relay.rooms.search_index import forget_redacted_txn
from relay.rooms.service import RoomService, insert_pdu_txn
from relay.runtime.clock import now_ms
from store import Connection
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state

log = logging.getLogger(__name__)

StateMap = dict[tuple[str, str], str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one received PDU (one entry of a /send response's pdu_results)."""

    status: str  # "accepted" | "soft_failed" | "rejected" | "duplicate" | "pending" (kept)
    reason: str | None = None

    @property
    def error(self) -> str | None:
        return self.reason if self.status == "rejected" else None


ACCEPTED = Outcome("accepted")
DUPLICATE = Outcome("duplicate")


MISSING_AUTH = "auth events"
MISSING_CREATE = "create event"
MISSING_PREV_STATE = "state at prev events"


class MissingEvents(Exception):
    """Events the PDU depends on are not stored; fetch them and try again."""

    def __init__(self, event_ids: Iterable[str], what: str) -> None:
        self.event_ids = sorted(set(event_ids))
        self.what = what
        super().__init__(f"missing {what}: {', '.join(self.event_ids)}")

    @property
    def auth_missing(self) -> bool:
        """Auth events (or the v12 create event) are missing, rather than prev state."""
        return self.what in (MISSING_AUTH, MISSING_CREATE)


class EventLoader:
    """Events as state resolution wants them: dicts with their event_id, read lazily."""

    def __init__(self, rooms: RoomService, conn: Connection) -> None:
        self._rooms = rooms
        self._conn = conn
        self._cache: dict[str, dict[str, Any] | None] = {}

    def get(self, event_id: str, /) -> dict[str, Any] | None:
        if event_id not in self._cache:
            pdu = self._rooms.get_pdu_txn(self._conn, event_id)
            self._cache[event_id] = _with_id(pdu) if pdu is not None else None
        return self._cache[event_id]


def _with_id(pdu: Pdu) -> dict[str, Any]:
    event = pdu.as_dict()
    event["event_id"] = pdu.event_id
    return event


def is_promotable_outlier(row: Mapping[str, Any]) -> bool:
    """A stored event row that is an accepted outlier: not yet part of the room graph."""
    return bool(row["outlier"]) and row["rejected_reason"] is None


def rejected_ids(conn: Connection, event_ids: Iterable[str]) -> set[str]:
    return store_events.rejected_event_ids(conn, event_ids)


def create_event_for(
    rooms: RoomService, conn: Connection, rv: RoomVersion, room_id: str
) -> dict[str, Any] | None:
    """The v12 create event (named by the room id itself); None for other versions."""
    if not rv.room_id_is_create_event_hash:
        return None
    pdu = rooms.get_pdu_txn(conn, create_event_id_of(room_id))
    return _with_id(pdu) if pdu is not None else None


def _auth_state_from(
    event: Mapping[str, Any], state: StateMap, rv: RoomVersion, loader: EventLoader
) -> dict[tuple[str, str], Mapping[str, Any]]:
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for key in auth_types_for_event(event, rv):
        event_id = state.get(key)
        if event_id is not None:
            auth_event = loader.get(event_id)
            if auth_event is not None:
                found[key] = auth_event
    return found


def resolve(
    rooms: RoomService,
    conn: Connection,
    rv: RoomVersion,
    states: list[StateMap],
    loader: EventLoader,
) -> StateMap:
    if not states:
        return {}
    if len(states) == 1:
        return dict(states[0])
    ids = {event_id for state in states for event_id in state.values()}
    return resolve_state(rv, states, loader, rejected=rejected_ids(conn, ids))


def state_before_txn(
    rooms: RoomService, conn: Connection, pdu: Pdu, loader: EventLoader
) -> StateMap:
    """The resolved state after the PDU's prev events. Raises MissingEvents."""
    states: list[StateMap] = []
    missing = []
    for prev in pdu.prev_event_ids:
        state = store_state.get_state_after(conn, prev)
        if state is None:
            missing.append(prev)
        else:
            states.append(state)
    if missing:
        raise MissingEvents(missing, MISSING_PREV_STATE)
    return resolve(rooms, conn, pdu.room_version, states, loader)


def accept_pdu_txn(
    rooms: RoomService,
    conn: Connection,
    pdu: Pdu,
    *,
    state_before: StateMap | None = None,
    outlier: bool = False,
    backfilled: bool = False,
) -> Outcome:
    """Check and store one remote PDU (see the module docstring).

    `state_before` is given when the prev events could not be fetched and the state
    was asked of a peer (/state_ids). `outlier` stores an event only for its own sake
    (an auth event, a state event fetched by id): auth-checked against its auth events,
    no state, not part of the timeline. `backfilled` stores older history.

    Raises MissingEvents when auth events (or, unless given, the state at the prev
    events) are not stored.
    """
    existing = store_events.get_event_row(conn, pdu.event_id)
    if existing is not None and (outlier or not is_promotable_outlier(existing)):
        return DUPLICATE
    # An outlier (stored for its own sake: an auth event, the edge of a bridged gap) that
    # now arrives as part of the room graph is accepted again, this time with its state.
    replaces = existing is not None
    rv = pdu.room_version
    room_id = pdu.room_id
    event = _with_id(pdu)
    loader = EventLoader(rooms, conn)
    create_event = (
        create_event_for(rooms, conn, rv, room_id) if pdu.type != "m.room.create" else None
    )
    if rv.room_id_is_create_event_hash and pdu.type != "m.room.create" and create_event is None:
        raise MissingEvents([create_event_id_of(room_id)], MISSING_CREATE)
    auth_pdus = rooms.get_pdus_txn(conn, pdu.auth_event_ids)
    missing = set(pdu.auth_event_ids) - set(auth_pdus)
    if missing:
        raise MissingEvents(missing, MISSING_AUTH)
    rejected = rejected_ids(conn, pdu.auth_event_ids)
    try:
        own_auth = check_auth_events(
            event,
            [_with_id(p) for p in auth_pdus.values()],
            rv,
            create_event=create_event,
            rejected=rejected,
        )
        check_auth(event, own_auth, rv, create_event=create_event)
    except AuthError as exc:
        return _store_rejected(
            rooms, conn, pdu, f"auth events: {exc.reason}", replaces, backfilled=backfilled
        )
    if outlier:
        insert_pdu_txn(conn, pdu, outlier=True)
        rooms.pdus.put(pdu)
        return ACCEPTED

    if state_before is None:
        state_before = state_before_txn(rooms, conn, pdu, loader)
    try:
        check_auth(
            event, _auth_state_from(event, state_before, rv, loader), rv, create_event=create_event
        )
    except AuthError as exc:
        return _store_rejected(
            rooms, conn, pdu, f"state before: {exc.reason}", replaces, backfilled=backfilled
        )

    current = store_state.get_current_state(conn, room_id)
    soft_failed = False
    if current and pdu.type != "m.room.create" and not backfilled:
        try:
            check_auth(
                event, _auth_state_from(event, current, rv, loader), rv, create_event=create_event
            )
        except AuthError as exc:
            soft_failed = True
            log.info("soft-failed %s in %s: %s", pdu.event_id, room_id, exc.reason)

    stream = _store(conn, pdu, replaces, soft_failed=soft_failed, backfilled=backfilled)
    store_state.record_event_state(
        conn,
        room_id=room_id,
        event_id=pdu.event_id,
        prev_event_ids=pdu.prev_event_ids,
        state_before=state_before,
        state_key=(pdu.type, pdu.state_key) if pdu.state_key is not None else None,
    )
    forget_redacted_txn(conn, rooms, pdu)
    rooms.pdus.put(pdu)
    if not soft_failed and not backfilled:
        store_events.update_forward_extremities(conn, room_id, pdu.event_id, pdu.prev_event_ids)
        refresh_current_state_txn(rooms, conn, rv, room_id, loader, stream)
    return Outcome("soft_failed") if soft_failed else ACCEPTED


def _store(
    conn: Connection,
    pdu: Pdu,
    replaces: bool,
    *,
    soft_failed: bool = False,
    rejected_reason: str | None = None,
    backfilled: bool = False,
) -> int:
    """Store the PDU at the next stream position (below all, when `backfilled`);
    `replaces`: its row is an outlier of this same event (edges stored already), which
    joins the room now."""
    if not replaces:
        return insert_pdu_txn(
            conn,
            pdu,
            soft_failed=soft_failed,
            rejected_reason=rejected_reason,
            backfilled=backfilled,
        )
    if backfilled:
        stream = store_events.next_backfill_stream_ordering(conn)
    else:
        stream = store_events.next_stream_ordering(conn)
    store_events.promote_outlier(
        conn,
        pdu.event_id,
        stream_ordering=stream,
        soft_failed=soft_failed,
        rejected_reason=rejected_reason,
        received_ts=now_ms(),
    )
    return stream


def _store_rejected(
    rooms: RoomService,
    conn: Connection,
    pdu: Pdu,
    reason: str,
    replaces: bool = False,
    *,
    backfilled: bool = False,
) -> Outcome:
    log.info("rejected %s in %s: %s", pdu.event_id, pdu.room_id, reason)
    _store(conn, pdu, replaces, rejected_reason=reason, backfilled=backfilled)
    return Outcome("rejected", reason)


def refresh_current_state_txn(
    rooms: RoomService,
    conn: Connection,
    rv: RoomVersion,
    room_id: str,
    loader: EventLoader,
    stream: int,
) -> None:
    """Re-resolve the current state over the forward extremities; update memberships."""
    states = []
    for extremity in store_events.get_forward_extremities(conn, room_id):
        state = store_state.get_state_after(conn, extremity)
        if state is not None:
            states.append(state)
    new_state = resolve(rooms, conn, rv, states, loader)
    old_state = store_state.get_current_state(conn, room_id)
    if new_state == old_state:
        return
    store_state.replace_current_state(conn, room_id, new_state)
    for key, event_id in new_state.items():
        if key[0] != "m.room.member" or old_state.get(key) == event_id:
            continue
        member = loader.get(event_id)
        membership = (member or {}).get("content", {}).get("membership")
        if isinstance(membership, str):
            store_rooms.set_membership(
                conn,
                room_id=room_id,
                user_id=key[1],
                membership=membership,
                event_id=event_id,
                stream_ordering=stream,
            )
