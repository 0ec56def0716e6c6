"""Synapse's room admin API: list rooms, a room's details, its members. Admins only.

Shapes follow element-hq/synapse `docs/admin_api/rooms.md` and
`synapse/rest/admin/rooms.py`; a room's figures come from its current state
(`relay.operator.actions.room_details_txn`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.client.auth import services_of
from relay.client.params import bool_query, int_query
from relay.client.route import ClientRoute
from relay.client.synapse_admin import (
    ADMIN_V1,
    admin_requester,
    choice_query,
    page,
)
from relay.errors import InvalidParam, NotFound
from relay.events.ids import localpart_of
from relay.operator import actions as operator
from relay.runtime.http import json_response
from store import rooms as store_rooms

#: order_by -> (field, largest first?) (Synapse's RoomSortOrder; two deprecated aliases).
ROOM_ORDERS: dict[str, tuple[str, bool]] = {
    "name": ("name", False),
    "alphabetical": ("name", False),
    "size": ("joined_members", True),
    "joined_members": ("joined_members", True),
    "joined_local_members": ("joined_local_members", True),
    "version": ("version", True),
    "creator": ("creator", False),
    "encryption": ("encryption", False),
    "federatable": ("federatable", False),
    "public": ("public", False),
    "join_rules": ("join_rules", False),
    "guest_access": ("guest_access", False),
    "history_visibility": ("history_visibility", False),
    "state_events": ("state_events", True),
    "canonical_alias": ("canonical_alias", False),
}
#: The fields of a room in the list (the details add topic and avatar).
LIST_FIELDS = (
    "room_id",
    "name",
    "canonical_alias",
    "joined_members",
    "joined_local_members",
    "version",
    "creator",
    "encryption",
    "federatable",
    "public",
    "join_rules",
    "guest_access",
    "history_visibility",
    "state_events",
    "room_type",
)


def _matches(room: dict[str, Any], term: str) -> bool:
    alias = room["canonical_alias"] or ""
    return (
        term.casefold() in (room["name"] or "").casefold()
        or term.casefold() in localpart_of(alias).casefold()
        or term in room["room_id"]
    )


def _sort_key(field: str) -> Any:
    def key(room: dict[str, Any]) -> tuple[bool, Any]:
        value = room[field]
        if field == "version":
            value = int(value) if str(value).isdigit() else 0
        return (value is not None, value if value is not None else 0)

    return key


async def list_rooms(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/rooms`"""
    await admin_requester(request)
    services = services_of(request)
    start, limit = int_query(request, "from", 0), int_query(request, "limit", 100)
    order_by = choice_query(request, "order_by", "name", tuple(ROOM_ORDERS))
    search_term = request.query_params.get("search_term")
    if search_term == "":
        raise InvalidParam("search_term cannot be an empty string")
    public_rooms = bool_query(request, "public_rooms", None)
    empty_rooms = bool_query(request, "empty_rooms", None)
    direction = choice_query(request, "dir", "f", ("f", "b"))
    rooms = await services.database.read(operator.rooms_txn, services.rooms)
    if search_term:
        rooms = [r for r in rooms if _matches(r, search_term)]
    if public_rooms is not None:
        rooms = [r for r in rooms if r["public"] == public_rooms]
    if empty_rooms is not None:
        rooms = [r for r in rooms if (r["joined_members"] == 0) == empty_rooms]
    field, largest_first = ROOM_ORDERS[order_by]
    rooms.sort(key=lambda r: r["room_id"])
    rooms.sort(key=_sort_key(field), reverse=largest_first != (direction == "b"))
    chunk, limit = page(rooms, start, limit)
    body: dict[str, Any] = {
        "offset": start,
        "rooms": [{k: room[k] for k in LIST_FIELDS} for room in chunk],
        "total_rooms": len(rooms),
    }
    if start + limit < len(rooms):
        body["next_batch"] = start + limit
    if start > 0:
        body["prev_batch"] = start - limit if start > limit else 0
    return json_response(body)


async def get_room(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/rooms/{room_id}`"""
    await admin_requester(request)
    services = services_of(request)
    room_id = request.path_params["room_id"]
    room = await services.database.read(operator.room_details_txn, services.rooms, room_id)
    if room is None:
        raise NotFound("Room not found")
    return json_response(room)


async def get_room_members(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/rooms/{room_id}/members`"""
    await admin_requester(request)
    services = services_of(request)
    room_id = request.path_params["room_id"]

    def txn(conn: Any) -> list[str] | None:
        if store_rooms.get_room(conn, room_id) is None:
            return None
        return store_rooms.joined_users(conn, room_id)

    members = await services.database.read(txn)
    if members is None:
        raise NotFound("Room not found")
    return json_response({"members": members, "total": len(members)})


ROUTES = [
    ClientRoute("/rooms", list_rooms, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute("/rooms/{room_id}", get_room, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute(
        "/rooms/{room_id}/members", get_room_members, ("GET",), auth=False, prefixes=ADMIN_V1
    ),
]
