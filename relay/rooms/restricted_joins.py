"""Restricted joins (v8+ `restricted`, v10+ `knock_restricted`): who may join a room
because they belong to another (Element's "Space members" rooms), and which of our users
vouches for them.

Rules kept (spec v1.16 "Restricted rooms"; Synapse's `EventAuthHandler` where open):

- `allowed_room_ids`: the `m.room_membership` entries of the join rule's `allow` list,
  only under a join rule and room version that have them.
- A join needs a voucher (`join_authorised_via_users_server`) only when the room is
  restricted and the joiner is neither invited nor joined. Then the joiner must be
  joined to one of the allowed rooms as far as our copy of those rooms says: otherwise
  403 `M_FORBIDDEN` (for another server's user, 400 `M_UNABLE_TO_AUTHORISE_JOIN` when we
  are not in an allowed room and so cannot tell).
- The voucher is one of our joined users whose power reaches the room's `invite` level
  (the strongest, then by user id): 400 `M_UNABLE_TO_GRANT_JOIN` when there is none.
- Every path asks `authoriser_for_join_txn`: a local user's join, another server's
  `make_join`, and its `send_join`, where we check the vouching named in the event
  before we add our signature to it (the auth rules require the voucher's server's
  signature; relay/events/auth.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.errors import Forbidden, MatrixError
from relay.events.auth import named_power_level, user_power_level
from relay.events.ids import server_of
from relay.events.room_versions import RoomVersion
from store import Connection
from store import rooms as store_rooms

if TYPE_CHECKING:  # the room service calls this module
    from relay.rooms.service import RoomService

JOIN_RULES = "m.room.join_rules"


class UnableToAuthoriseJoin(MatrixError):
    status = 400
    errcode = "M_UNABLE_TO_AUTHORISE_JOIN"


class UnableToGrantJoin(MatrixError):
    status = 400
    errcode = "M_UNABLE_TO_GRANT_JOIN"


def is_restricted(join_rules: dict[str, Any], rv: RoomVersion) -> bool:
    rule = join_rules.get("join_rule")
    return (rule == "restricted" and rv.restricted_join_rule) or (
        rule == "knock_restricted" and rv.knock_restricted_join_rule
    )


def allowed_room_ids(join_rules: dict[str, Any], rv: RoomVersion) -> list[str]:
    """The rooms whose members a restricted join rule lets in ([] when not restricted)."""
    allow = join_rules.get("allow")
    if not is_restricted(join_rules, rv) or not isinstance(allow, list):
        return []
    return [
        entry["room_id"]
        for entry in allow
        if isinstance(entry, dict)
        and entry.get("type") == "m.room_membership"
        and isinstance(entry.get("room_id"), str)
    ]


def join_rules_txn(conn: Connection, rooms: RoomService, room_id: str) -> dict[str, Any]:
    pdu = rooms.state_event_txn(conn, room_id, JOIN_RULES, "")
    return dict(pdu.content) if pdu is not None else {}


def authoriser_for_join_txn(
    conn: Connection, rooms: RoomService, room_id: str, user_id: str
) -> str | None:
    """Our user who vouches for `user_id` joining `room_id`; None when the join needs no
    voucher. Raises Forbidden, UnableToAuthoriseJoin or UnableToGrantJoin."""
    rv = rooms.room_version_txn(conn, room_id)
    join_rules = join_rules_txn(conn, rooms, room_id)
    if not is_restricted(join_rules, rv):
        return None
    if store_rooms.get_membership(conn, room_id, user_id) in ("invite", "join"):
        return None
    allowed = allowed_room_ids(join_rules, rv)
    if not any(store_rooms.get_membership(conn, r, user_id) == "join" for r in allowed):
        ours = rooms.server_name
        if server_of(user_id) != ours and not all(
            ours in store_rooms.servers_in_room(conn, r) for r in allowed
        ):
            raise UnableToAuthoriseJoin(f"Unable to check if {user_id} is in allowed rooms.")
        raise Forbidden("You do not belong to any of the required rooms/spaces to join this room.")
    able = _local_inviters_txn(conn, rooms, room_id, rv)
    if not able:
        raise UnableToGrantJoin("Unable to find a user which could issue an invite")
    return able[0]


def check_voucher_txn(
    conn: Connection, rooms: RoomService, room_id: str, user_id: str, voucher: str
) -> None:
    """Another server's join names our user `voucher`: may it? (The joiner belongs to an
    allowed room, and `voucher` is ours, joined, and may invite.) Raises as
    `authoriser_for_join_txn`, and Forbidden."""
    if authoriser_for_join_txn(conn, rooms, room_id, user_id) is None:
        raise Forbidden("This join needs nobody to vouch for it")
    rv = rooms.room_version_txn(conn, room_id)
    if voucher not in _local_inviters_txn(conn, rooms, room_id, rv):
        raise Forbidden(f"{voucher} cannot vouch for joins of this room")


def _local_inviters_txn(
    conn: Connection, rooms: RoomService, room_id: str, rv: RoomVersion
) -> list[str]:
    """Our joined users whose power reaches the `invite` level, strongest first."""
    state: dict[tuple[str, str], Any] = {}
    for key in (("m.room.create", ""), ("m.room.power_levels", "")):
        pdu = rooms.state_event_txn(conn, room_id, *key)
        if pdu is not None:
            state[key] = pdu.as_dict()
    needed = named_power_level("invite", state)
    ranked = sorted(
        (-user_power_level(member, state, rv), member)
        for member in store_rooms.joined_users(conn, room_id)
        if server_of(member) == rooms.server_name
    )
    return [member for power, member in ranked if -power >= needed]
