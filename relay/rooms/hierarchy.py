"""Space hierarchies and room summaries, from what this server holds.

The walk over a space tree, its pagination and what other servers are asked live in
relay/client/hierarchy.py; the federation answer in relay/federation/hierarchy.py. This
module reads our own copy of rooms, one room at a time.

Rules kept (spec v1.16 "Spaces" and `GET /rooms/{roomId}/hierarchy`; Synapse's
`RoomSummaryHandler` where the spec leaves it open):

- A room's entry is its /publicRooms entry (relay/rooms/directory.py) plus
  `room_version`, `encryption` (the algorithm) and, for a restricted join rule,
  `allowed_room_ids`.
- Children are the room's current `m.space.child` events whose `via` is a non-empty
  list of strings (an emptied or redacted one is a removed child), stripped and with
  their `origin_server_ts`, ordered by a valid `order` (printable ASCII, at most 50
  characters; rooms without one last), then `origin_server_ts`, then room id. Only a
  space (`type: m.space`) has children in its entry; `suggested_only` keeps the children
  marked `suggested: true`.
- Who may see a room's entry (Synapse's `_is_local_room_accessible`): anyone when its
  join rule is public (or knock, knock_restricted where the version has them) or its
  history is world readable; otherwise a user who is joined or invited, or who is
  joined to one of the rooms a restricted join rule allows; a server with a user joined
  or invited, or with a user in one of those rooms. A room we hold no state of is
  visible to nobody.
"""

from __future__ import annotations

import re
from typing import Any

from relay.events.ids import server_of
from relay.events.room_versions import room_version
from relay.rooms.directory import room_summary_txn
from relay.rooms.restricted_joins import allowed_room_ids, join_rules_txn
from relay.rooms.service import RoomService
from store import Connection
from store import rooms as store_rooms
from store import state as store_state

SPACE = "m.space"
SPACE_CHILD = "m.space.child"
#: Children of one space considered at the most (Synapse's MAX_ROOMS_PER_SPACE).
MAX_CHILDREN = 50
_VALID_ORDER = re.compile(r"[\x20-\x7E]{0,50}")


def holds_room_txn(conn: Connection, rooms: RoomService, room_id: str) -> bool:
    """Does a user of ours belong to the room, so our copy of it is live?"""
    return rooms.server_name in store_rooms.servers_in_room(conn, room_id)


def room_entry_txn(conn: Connection, rooms: RoomService, room_id: str) -> dict[str, Any]:
    """The summary of a room we hold (see the module docstring)."""
    entry = room_summary_txn(conn, rooms, room_id)
    version = store_rooms.get_room_version(conn, room_id)
    if version is not None:
        entry["room_version"] = version
    encryption = _content(conn, rooms, room_id, "m.room.encryption").get("algorithm")
    if isinstance(encryption, str):
        entry["encryption"] = encryption
    allowed = allowed_room_ids_txn(conn, rooms, room_id)
    if allowed:
        entry["allowed_room_ids"] = allowed
    return entry


def allowed_room_ids_txn(conn: Connection, rooms: RoomService, room_id: str) -> list[str]:
    """The rooms whose members a restricted join rule lets in ([] when not restricted)."""
    version = room_version(store_rooms.get_room_version(conn, room_id) or "")
    if version is None:
        return []
    return allowed_room_ids(join_rules_txn(conn, rooms, room_id), version)


def children_txn(
    conn: Connection, rooms: RoomService, room_id: str, *, suggested_only: bool
) -> list[dict[str, Any]]:
    """The room's children as stripped `m.space.child` events, in order."""
    found = []
    for event_id in store_state.current_state_of_type(conn, room_id, SPACE_CHILD).values():
        pdu = rooms.get_pdu_txn(conn, event_id)
        if pdu is None or not is_valid_child(pdu.content):
            continue
        if suggested_only and pdu.content.get("suggested") is not True:
            continue
        found.append(
            {
                "type": SPACE_CHILD,
                "state_key": pdu.state_key,
                "content": dict(pdu.content),
                "sender": pdu.sender,
                "origin_server_ts": pdu.origin_server_ts,
            }
        )
    found.sort(key=child_order)
    return found


def is_valid_child(content: Any) -> bool:
    """An `m.space.child` content that names a child: `via` is a non-empty list of strings."""
    via = content.get("via") if isinstance(content, dict) else None
    return isinstance(via, list) and bool(via) and all(isinstance(v, str) for v in via)


def child_order(child: dict[str, Any]) -> tuple[bool, str, int, str]:
    """Sort key of a stripped child event: a valid `order` first, then its
    `origin_server_ts`, then the child's room id."""
    order = child.get("content", {}).get("order")
    valid = isinstance(order, str) and _VALID_ORDER.fullmatch(order) is not None
    ts = child.get("origin_server_ts")
    return (
        not valid,
        order if valid else "",
        ts if isinstance(ts, int) else 0,
        str(child.get("state_key", "")),
    )


def accessible_txn(
    conn: Connection,
    rooms: RoomService,
    room_id: str,
    *,
    user_id: str | None = None,
    origin: str | None = None,
) -> bool:
    """May `user_id` (a local user), or the server `origin`, see this room's entry?"""
    version = room_version(store_rooms.get_room_version(conn, room_id) or "")
    if version is None or not store_state.get_current_state_event_id(
        conn, room_id, "m.room.create", ""
    ):
        return user_id is not None and store_rooms.get_membership(conn, room_id, user_id) in (
            "invite",
        )
    rule = _content(conn, rooms, room_id, "m.room.join_rules").get("join_rule")
    history = _content(conn, rooms, room_id, "m.room.history_visibility")
    if (
        rule == "public"
        or (rule == "knock" and version.knock_join_rule)
        or (rule == "knock_restricted" and version.knock_restricted_join_rule)
        or history.get("history_visibility") == "world_readable"
    ):
        return True
    allowed = allowed_room_ids_txn(conn, rooms, room_id)
    if user_id is not None:
        if store_rooms.get_membership(conn, room_id, user_id) in ("join", "invite"):
            return True
        return any(store_rooms.get_membership(conn, r, user_id) == "join" for r in allowed)
    if origin is not None:
        for member, membership in store_rooms.members(conn, room_id).items():
            if server_of(member) == origin and membership in ("join", "invite"):
                return True
        return any(origin in store_rooms.servers_in_room(conn, r) for r in allowed)
    return False


def is_open_entry(entry: dict[str, Any]) -> bool:
    """Does a room's entry (ours or another server's) show it to anyone: public or
    knockable join rule, or world-readable history?"""
    return entry.get("join_rule", "public") in ("public", "knock", "knock_restricted") or (
        entry.get("world_readable") is True
    )


def _content(conn: Connection, rooms: RoomService, room_id: str, type_: str) -> dict[str, Any]:
    pdu = rooms.state_event_txn(conn, room_id, type_, "")
    return dict(pdu.content) if pdu is not None else {}
