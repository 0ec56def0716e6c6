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
- Servers (federation /event, /backfill, /get_missing_events): the same rule with the best
  membership any user of the server had before the event; an event a server may not read
  is served redacted (`visible_to_server_txn`), as Synapse serves it.
- Erased senders (spec `/account/deactivate` `erase`; Synapse's
  `_check_client_allowed_to_see_event` and `filter_events_for_server`): an event whose
  sender is a local user deactivated with `erase` is served pruned (the room version's
  redaction algorithm) to a reader who may see it but was not joined when it was sent
  (`as_seen`): those who joined after it (or peek) get the redacted copy, those who
  were there still read it whole. A server is judged the same way, by the best
  membership any of its users had before the event. (Synapse serves it pruned to every
  server; the spec's "servers which join the room after the erasure" keeps the whole
  event for a server that was there, and the rule stays one for users and servers.)
- Fast path: when every history_visibility the room ever had is `shared` or
  `world_readable` and the reader is or was joined, no per-event state is loaded, but
  for events of erased senders (one primary-key lookup per distinct sender of a batch).

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-history-visibility
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay.errors import Forbidden
from relay.events.pdu import Pdu
from relay.events.redaction import redact
from relay.rooms.service import RoomService
from store import Connection
from store import accounts as store_accounts
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
    return known_visibility(
        content_of(conn, rooms, state.get(HISTORY_VISIBILITY)).get("history_visibility")
    )


def known_visibility(value: Any) -> str:
    """A raw `history_visibility` value as the rule reads it ("shared" when unknown)."""
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


def erased_senders_txn(conn: Connection, pdus: list[Pdu]) -> set[str]:
    """The senders of `pdus` that are local users deactivated with `erase`."""
    return store_accounts.erased_users(conn, {pdu.sender for pdu in pdus})


def pruned(pdu: Pdu) -> Pdu:
    """`pdu` as its room version's redaction algorithm leaves it (same event id)."""
    return Pdu.from_dict(redact(pdu.as_dict(), pdu.room_version), pdu.room_version)


def as_seen(pdu: Pdu, membership_then: str | None, erased: set[str]) -> Pdu:
    """The form of a visible event its reader gets: pruned when its sender was erased
    and the reader (a user, or a server's best member) was not joined when it was sent."""
    return pdu if served_whole(pdu, membership_then, erased) else pruned(pdu)


def served_whole(pdu: Pdu, membership_then: str | None, erased: set[str]) -> bool:
    """False for an erased sender's event to a reader not joined when it was sent."""
    return pdu.sender not in erased or membership_then == "join"


def visible_txn(conn: Connection, rooms: RoomService, viewer: Viewer, pdus: list[Pdu]) -> list[Pdu]:
    """The events of `pdus` the viewer may see (order kept), each as they may see it
    (`as_seen`: an erased sender's event pruned for a reader who was not joined then)."""
    if not pdus:
        return pdus
    erased = erased_senders_txn(conn, pdus)
    lax = not viewer.peeking and _always_shared(conn, rooms, viewer.room_id)
    if lax and not erased:
        return pdus
    at_group: dict[int, tuple[str, str | None]] = {}
    out = []
    for pdu in pdus:
        if lax and pdu.sender not in erased:
            out.append(pdu)
            continue
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
        if own_membership or lax or sees(visibility, membership, peeking=viewer.peeking):
            out.append(as_seen(pdu, membership, erased))
    return out


def visible_to_server_txn(
    conn: Connection, rooms: RoomService, server: str, pdus: list[Pdu]
) -> set[str]:
    """The ids of `pdus` another server may read in full (Synapse's
    `filter_events_for_server`): judged as for a user, on the state before each event,
    with the best membership any of the server's users had then; a `shared` room's events
    are visible to every server, but an erased sender's only to a server that had a user
    joined then (`as_seen`). The others are served redacted."""
    suffix = f":{server}"
    erased = erased_senders_txn(conn, pdus)
    at_group: dict[int, tuple[bool, str | None]] = {}
    out: set[str] = set()
    for pdu in pdus:
        groups = store_state.get_event_state_groups(conn, pdu.event_id)
        if groups is None:
            if pdu.sender not in erased:
                out.add(pdu.event_id)
            continue
        if groups[0] not in at_group:
            before = store_state.load_state_group(conn, groups[0])
            memberships = {
                _membership_in(conn, rooms, before, user)
                for (type_, user) in before
                if type_ == "m.room.member" and user.endswith(suffix)
            }
            best = (
                "join" if "join" in memberships else "invite" if "invite" in memberships else None
            )
            visible = sees(history_visibility(conn, rooms, before), best, peeking=False)
            at_group[groups[0]] = (visible, best)
        visible, best = at_group[groups[0]]
        if visible and served_whole(pdu, best, erased):
            out.add(pdu.event_id)
    return out


def sees(visibility: str, membership: str | None, *, peeking: bool) -> bool:
    """The history visibility rule: may a reader whose membership was `membership` in the
    state before an event under `visibility` see it? (`peeking`: never joined the room.)"""
    if visibility == "world_readable" or membership == "join":
        return True
    if visibility == "joined":
        return False
    if visibility == "invited":
        return membership == "invite"
    return not peeking  # shared
