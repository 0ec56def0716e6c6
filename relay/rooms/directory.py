"""The room directory: local aliases and the list of published ("public") rooms.

Rules kept:

- Only aliases on our server name are created here; one that exists is 409 M_UNKNOWN
  (spec). The creator must be joined to the room.
- An alias may be deleted by its creator, a server admin, or a member whose power
  level allows sending `m.room.canonical_alias` (Synapse's `_user_can_delete_alias`
  and `check_can_change_room_list`); the same members may publish or unpublish the
  room. Anyone else gets M_FORBIDDEN.
- Resolving asks no other server (there is no outbound directory query yet): an alias
  we don't hold is M_NOT_FOUND. `servers` are ours first, then the room's.
- /publicRooms lists our published rooms, largest first (then by room id), paged by
  offset tokens `p<offset>` in `next_batch`/`prev_batch`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-aliases (directory.yaml),
https://spec.matrix.org/v1.16/client-server-api/#listing-rooms (list_public_rooms.yaml)
"""

from __future__ import annotations

from typing import Any

from relay.errors import Forbidden, InvalidParam, NotFound, Unknown
from relay.events.auth import required_power_level, user_power_level
from relay.rooms.service import RoomService
from relay.rooms.visibility import content_of, joined_viewer_txn, viewer_txn
from store import Connection
from store import accounts as store_accounts
from store import rooms as store_rooms
from store import state as store_state
from store.errors import AliasExists

# -- aliases -------------------------------------------------------------------------------


async def resolve_alias(rooms: RoomService, alias: str) -> dict[str, Any]:
    """`{room_id, servers}` for a local alias. Raises NotFound."""

    def txn(conn: Connection) -> dict[str, Any]:
        found = store_rooms.get_alias(conn, alias)
        if found is None:
            raise NotFound(f"Room alias {alias} not found")
        room_id, stored = found
        servers = [rooms.server_name, *stored, *store_rooms.servers_in_room(conn, room_id)]
        return {"room_id": room_id, "servers": list(dict.fromkeys(servers))}

    return await rooms.database.read(txn)


async def create_alias(rooms: RoomService, user_id: str, alias: str, room_id: str) -> None:
    """Point a local alias at a room the user is joined to.

    Raises: NotFound (unknown room), Forbidden (not joined), Unknown 409 (alias taken).
    """

    def txn(conn: Connection) -> None:
        if store_rooms.get_room_version(conn, room_id) is None:
            raise NotFound(f"Unknown room {room_id}")
        joined_viewer_txn(conn, rooms, room_id, user_id)
        try:
            store_rooms.create_alias(
                conn, alias=alias, room_id=room_id, servers=[rooms.server_name], creator=user_id
            )
        except AliasExists:
            raise Unknown(f"Room alias {alias} already exists", status=409) from None

    await rooms.database.write(txn)


async def delete_alias(rooms: RoomService, user_id: str, alias: str) -> None:
    """Remove a local alias. Raises NotFound, Forbidden."""

    def txn(conn: Connection) -> None:
        found = store_rooms.get_alias(conn, alias)
        if found is None:
            raise NotFound(f"Room alias {alias} not found")
        if store_rooms.get_alias_creator(conn, alias) != user_id and not _may_edit_room_list(
            conn, rooms, user_id, found[0]
        ):
            raise Forbidden("You may not delete this alias")
        store_rooms.delete_alias(conn, alias)

    await rooms.database.write(txn)


async def local_aliases(rooms: RoomService, user_id: str, room_id: str) -> list[str]:
    """The room's local aliases, for those who may read the room. Raises Forbidden."""

    def txn(conn: Connection) -> list[str]:
        viewer_txn(conn, rooms, room_id, user_id)
        return store_rooms.aliases_for_room(conn, room_id)

    return await rooms.database.read(txn)


def _may_edit_room_list(conn: Connection, rooms: RoomService, user_id: str, room_id: str) -> bool:
    """A server admin, or a joined member allowed to send m.room.canonical_alias."""
    user = store_accounts.get_user(conn, user_id)
    if user is not None and user["is_admin"]:
        return True
    if store_rooms.get_membership(conn, room_id, user_id) != "join":
        return False
    rv = rooms.room_version_txn(conn, room_id)
    state = {}
    for key in (("m.room.create", ""), ("m.room.power_levels", "")):
        pdu = rooms.state_event_txn(conn, room_id, *key)
        if pdu is not None:
            state[key] = pdu.as_dict()
    needed = required_power_level("m.room.canonical_alias", "", state)
    return user_power_level(user_id, state, rv) >= needed


# -- published rooms --------------------------------------------------------------------------


async def room_visibility(rooms: RoomService, room_id: str) -> str:
    """ "public" or "private". Raises NotFound."""
    room = await rooms.database.read(store_rooms.get_room, room_id)
    if room is None:
        raise NotFound("Room not found")
    return "public" if room["is_public"] else "private"


async def set_room_visibility(
    rooms: RoomService, user_id: str, room_id: str, visibility: str
) -> None:
    """Publish or unpublish the room. Raises NotFound, Forbidden."""

    def txn(conn: Connection) -> None:
        if store_rooms.get_room(conn, room_id) is None:
            raise NotFound("Room not found")
        if not _may_edit_room_list(conn, rooms, user_id, room_id):
            raise Forbidden("You may not change this room's directory visibility")
        store_rooms.set_room_public(conn, room_id, visibility == "public")

    await rooms.database.write(txn)


def room_summary_txn(conn: Connection, rooms: RoomService, room_id: str) -> dict[str, Any]:
    """The /publicRooms chunk entry of a room, from its current state."""
    state = store_state.get_current_state(conn, room_id)

    def field(type_: str, key: str) -> Any:
        return content_of(conn, rooms, state.get((type_, ""))).get(key)

    entry: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": len(store_rooms.joined_users(conn, room_id)),
        "world_readable": field("m.room.history_visibility", "history_visibility")
        == "world_readable",
        "guest_can_join": field("m.room.guest_access", "guest_access") == "can_join",
        "join_rule": field("m.room.join_rules", "join_rule") or "invite",
    }
    for name, type_, key in (
        ("name", "m.room.name", "name"),
        ("topic", "m.room.topic", "topic"),
        ("canonical_alias", "m.room.canonical_alias", "alias"),
        ("avatar_url", "m.room.avatar", "url"),
        ("room_type", "m.room.create", "type"),
    ):
        value = field(type_, key)
        if isinstance(value, str) and value:
            entry[name] = value
    return entry


def _matches(entry: dict[str, Any], term: str | None, room_types: list[str | None] | None) -> bool:
    if room_types is not None and entry.get("room_type") not in room_types:
        return False
    if not term:
        return True
    needle = term.casefold()
    fields = (entry.get("name"), entry.get("topic"), entry.get("canonical_alias"))
    return any(isinstance(f, str) and needle in f.casefold() for f in fields)


def _parse_since(since: str | None) -> int:
    if not since:
        return 0
    if not since.startswith("p") or not since[1:].isdigit():
        raise InvalidParam("Invalid since token")
    return int(since[1:])


async def public_rooms(
    rooms: RoomService,
    *,
    limit: int | None,
    since: str | None,
    search_term: str | None = None,
    room_types: list[str | None] | None = None,
) -> dict[str, Any]:
    """A page of the published room list (`chunk`, `next_batch`, `prev_batch`,
    `total_room_count_estimate`)."""
    offset = _parse_since(since)

    def txn(conn: Connection) -> list[dict[str, Any]]:
        return [room_summary_txn(conn, rooms, r) for r in store_rooms.public_room_ids(conn)]

    entries = await rooms.database.read(txn)
    total = len(entries)
    entries = [e for e in entries if _matches(e, search_term, room_types)]
    entries.sort(key=lambda e: (-e["num_joined_members"], e["room_id"]))
    end = len(entries) if limit is None else offset + limit
    body: dict[str, Any] = {"chunk": entries[offset:end], "total_room_count_estimate": total}
    if end < len(entries):
        body["next_batch"] = f"p{end}"
    if offset > 0 and limit is not None:
        body["prev_batch"] = f"p{max(0, offset - limit)}"
    return body
