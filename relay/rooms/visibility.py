"""History visibility: which room events and state one user may read.

Rules kept:

- Who may read a room (Synapse's `check_user_in_room_or_world_readable` with
  departed users allowed): a joined user reads everything; a user who left or was
  kicked reads up to and including their leave event, and the state as it was then
  (with `shared` semantics only if they were joined when they left); anyone else,
  banned users included, reads only a `world_readable` room. Otherwise M_FORBIDDEN,
  also for a room we don't know, as Synapse answers.
- Which events (spec "history visibility"; Synapse's `_check_history_visibility`),
  judged on the state *before* each event: `world_readable` shows it to everyone; a
  user joined at that point sees it; `invited` adds users invited then; `shared` shows
  it to anyone who is or was joined, not to an outsider peeking. A user always sees
  their own membership events.
- Fast path: when every history_visibility the room ever had is `shared` or
  `world_readable` and the reader is or was joined, no per-event state is loaded.

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-history-visibility
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay.errors import Forbidden
from relay.events.pdu import Pdu
from relay.rooms.service import RoomService
from store import Connection
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state

StateMap = dict[tuple[str, str], str]

HISTORY_VISIBILITY = ("m.room.history_visibility", "")


@dataclass(frozen=True, slots=True)
class Viewer:
    """A user reading one room, and how far they may read."""

    user_id: str
    room_id: str
    #: The last stream position they may see (their leave event), None: up to now.
    until: int | None = None
    until_event_id: str | None = None
    #: Not a member, past or present: only world_readable history is theirs to see.
    peeking: bool = False


# -- who may read ----------------------------------------------------------------------


def viewer_txn(conn: Connection, rooms: RoomService, room_id: str, user_id: str) -> Viewer:
    """The reader and their bounds. Raises Forbidden (also for unknown rooms)."""
    current = store_rooms.get_membership_event(conn, room_id, user_id)
    if current is not None and current[0] == "join":
        return Viewer(user_id, room_id)
    if current is not None and current[0] == "leave":
        _, leave_id, leave_so = current
        before = store_state.get_state_before(conn, leave_id) or {}
        was_joined = _membership_in(conn, rooms, before, user_id) == "join"
        return Viewer(user_id, room_id, leave_so, leave_id, peeking=not was_joined)
    if history_visibility(conn, rooms, store_state.get_current_state(conn, room_id)) == (
        "world_readable"
    ):
        return Viewer(user_id, room_id, peeking=True)
    raise Forbidden(f"User {user_id} is not in room {room_id}")


def joined_viewer_txn(conn: Connection, rooms: RoomService, room_id: str, user_id: str) -> Viewer:
    """Only a currently joined user. Raises Forbidden."""
    if store_rooms.get_membership(conn, room_id, user_id) != "join":
        raise Forbidden(f"User {user_id} is not joined to room {room_id}")
    return Viewer(user_id, room_id)


def content_of(conn: Connection, rooms: RoomService, event_id: str | None) -> dict[str, Any]:
    """The content of a stored event ({} when there is none)."""
    pdu = rooms.get_pdu_txn(conn, event_id) if event_id else None
    return pdu.content if pdu is not None else {}


def _membership_in(
    conn: Connection, rooms: RoomService, state: StateMap, user_id: str
) -> str | None:
    value = content_of(conn, rooms, state.get(("m.room.member", user_id))).get("membership")
    return value if isinstance(value, str) else None


def history_visibility(conn: Connection, rooms: RoomService, state: StateMap) -> str:
    """The state's history_visibility; "shared" when unset or unknown (spec default)."""
    value = content_of(conn, rooms, state.get(HISTORY_VISIBILITY)).get("history_visibility")
    return value if value in ("world_readable", "shared", "invited", "joined") else "shared"


def _always_shared(conn: Connection, rooms: RoomService, room_id: str) -> bool:
    # Outliers count: in a room joined over federation, the history_visibility events
    # are outliers (join state) until the history holding them is backfilled, and the
    # backfilled events before them must not slip through the fast path meanwhile.
    for event_id in store_events.state_event_ids_of_type(
        conn, room_id, HISTORY_VISIBILITY[0], include_outliers=True
    ):
        value = content_of(conn, rooms, event_id).get("history_visibility")
        if value not in ("shared", "world_readable", None):
            return False
    return True


def visible_txn(conn: Connection, rooms: RoomService, viewer: Viewer, pdus: list[Pdu]) -> list[Pdu]:
    """The events of `pdus` the viewer may see (order kept)."""
    if not pdus or (not viewer.peeking and _always_shared(conn, rooms, viewer.room_id)):
        return pdus
    at_group: dict[int, tuple[str, str | None]] = {}
    out = []
    for pdu in pdus:
        groups = store_state.get_event_state_groups(conn, pdu.event_id)
        if groups is None:
            visibility, membership = "shared", None
        elif groups[0] in at_group:
            visibility, membership = at_group[groups[0]]
        else:
            before = store_state.load_state_group(conn, groups[0])
            visibility = history_visibility(conn, rooms, before)
            membership = _membership_in(conn, rooms, before, viewer.user_id)
            at_group[groups[0]] = (visibility, membership)
        own_membership = pdu.type == "m.room.member" and pdu.state_key == viewer.user_id
        if own_membership or _is_visible(visibility, membership, viewer.peeking):
            out.append(pdu)
    return out


def _is_visible(visibility: str, membership: str | None, peeking: bool) -> bool:
    if visibility == "world_readable" or membership == "join":
        return True
    if visibility == "joined":
        return False
    if visibility == "invited":
        return membership == "invite"
    return not peeking  # shared
