"""`GET /_matrix/client/v1/rooms/{roomId}/hierarchy`: a space's tree, depth first, in pages;
`GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`: one room's entry (room previews).

What a room's entry holds and who may see it: relay/rooms/hierarchy.py. Rules of the walk
(spec v1.16; Synapse's `RoomSummaryHandler.get_room_hierarchy` where it is open):

- Depth first from the requested room, children in their order; a room is shown once.
  A room we hold is read from our copy; another is asked of its `via` servers over
  federation (relay/federation/hierarchy.py), whose answer also summarises that space's
  children, used for children that are not spaces themselves.
- A room the user may not see is left out with its subtree; the requested room itself
  is 403 `M_FORBIDDEN` then (also when nobody could tell us about it).
- `limit` rooms per page (default and at most `MAX_ROOMS`), `max_depth` levels below the
  requested room (none by default), `suggested_only`; bad values 400 `M_INVALID_PARAM`,
  as Synapse's parsers answer. `next_batch` names the rest of the walk, kept here for
  `SESSION_TTL_S`; a token that is unknown, expired, someone else's or used with other
  parameters is 400 `M_INVALID_PARAM`.
- Bounded: at most `MAX_REMOTE_ROOMS` rooms asked of other servers per request, each of
  at most 3 servers (what is left is walked on the next page).
- A room summary: the room's entry (no children) and, for a signed-in user, their
  `membership` (`leave` when none), as Synapse answers; the access token is optional.
  A room we hold and the caller may not see, or one no `via` server tells us of, is 404
  `M_NOT_FOUND`; a room we do not hold, named without `via` (nor an alias's servers),
  400 `M_UNKNOWN`. Also under Synapse's unstable `im.nheko.summary` paths.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import access_token, requester_of, services_of
from relay.client.membership import room_and_via
from relay.client.params import bool_query, int_query
from relay.client.route import ClientRoute
from relay.errors import Forbidden, InvalidParam, NotFound, Unknown
from relay.events.ids import is_valid_server_name
from relay.federation.hierarchy import fetch_hierarchy
from relay.rooms.hierarchy import (
    SPACE,
    accessible_txn,
    children_txn,
    holds_room_txn,
    is_open_entry,
    room_entry_txn,
)
from relay.runtime.http import json_response
from relay.services import Services
from store import Connection
from store import rooms as store_rooms

MAX_ROOMS = 50
MAX_REMOTE_ROOMS = 10
SESSION_TTL_S = 5 * 60
MAX_SESSIONS = 1000
CLIENT_V1 = ("/_matrix/client/v1",)


@dataclass
class _Queued:
    room_id: str
    via: tuple[str, ...]
    depth: int = 0
    #: the room's entry from its parent's federation answer (None: ask or read it)
    remote: dict[str, Any] | None = None


@dataclass
class _Walk:
    user_id: str
    room_id: str
    suggested_only: bool
    max_depth: int | None
    queue: list[_Queued]
    processed: set[str] = field(default_factory=set)


class HierarchyPages:
    """The unfinished walks `next_batch` tokens name: at most `MAX_SESSIONS`, each kept
    `SESSION_TTL_S` seconds (the oldest goes first when full)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._walks: OrderedDict[str, tuple[float, _Walk]] = OrderedDict()

    def keep(self, walk: _Walk) -> str:
        self._sweep()
        while len(self._walks) >= MAX_SESSIONS:
            self._walks.popitem(last=False)
        token = secrets.token_urlsafe(16)
        self._walks[token] = (self._clock(), walk)
        return token

    def take(self, token: str) -> _Walk | None:
        self._sweep()
        found = self._walks.pop(token, None)
        return found[1] if found is not None else None

    def _sweep(self) -> None:
        now = self._clock()
        while self._walks:
            token, (born, _) = next(iter(self._walks.items()))
            if now - born <= SESSION_TTL_S:
                break
            del self._walks[token]


async def get_hierarchy(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`"""
    services = services_of(request)
    room_id = request.path_params["room_id"]
    if not room_id.startswith("!"):
        raise InvalidParam(f"{room_id!r} is not a room id")
    limit = int_query(request, "limit", MAX_ROOMS)
    if limit < 1:
        raise InvalidParam("limit must be greater than 0")
    limit = min(limit, MAX_ROOMS)
    raw_depth = request.query_params.get("max_depth")
    max_depth = int_query(request, "max_depth", 0) if raw_depth is not None else None
    suggested_only = bool(bool_query(request, "suggested_only", False))
    token = request.query_params.get("from")
    user_id = requester.user_id
    pages: HierarchyPages = services.hierarchy_pages
    if token is not None:
        walk = pages.take(token)
        if walk is None or (walk.user_id, walk.room_id, walk.suggested_only, walk.max_depth) != (
            user_id,
            room_id,
            suggested_only,
            max_depth,
        ):
            raise InvalidParam("Unknown pagination token")
    else:
        await _check_root(services, user_id, room_id)
        walk = _Walk(user_id, room_id, suggested_only, max_depth, [_Queued(room_id, ())])
    rooms = await _walk(services, walk, limit)
    answer: dict[str, Any] = {"rooms": rooms}
    if walk.queue:
        answer["next_batch"] = pages.keep(walk)
    return json_response(answer)


async def _check_root(services: Services, user_id: str, room_id: str) -> None:
    rooms = services.rooms

    def txn(conn: Connection) -> bool | None:
        if not holds_room_txn(conn, rooms, room_id):
            return None
        return accessible_txn(conn, rooms, room_id, user_id=user_id)

    held = await rooms.database.read(txn)
    if held is None:
        # Servers of members we knew (a room we left); none for a room we never held.
        via = await rooms.database.read(store_rooms.servers_in_room, room_id)
        found = await fetch_hierarchy(
            services.federation_client, via, room_id, suggested_only=False
        )
        held = found is not None and await _remote_accessible(services, user_id, found.room)
    if not held:
        raise Forbidden(f"User {user_id} not in room {room_id}, and room previews are disabled")


async def _walk(services: Services, walk: _Walk, limit: int) -> list[dict[str, Any]]:
    rooms = services.rooms
    found: list[dict[str, Any]] = []
    asked = 0
    while walk.queue and len(found) < limit:
        queued = walk.queue[-1]
        if queued.room_id in walk.processed:
            walk.queue.pop()
            continue
        children_entries: dict[str, dict[str, Any]] = {}
        inaccessible: frozenset[str] = frozenset()

        def local(conn: Connection, q: _Queued = queued) -> tuple[bool, dict[str, Any] | None]:
            """(do we hold the room, its entry if the user may see it)"""
            if not holds_room_txn(conn, rooms, q.room_id):
                return False, None
            if not accessible_txn(conn, rooms, q.room_id, user_id=walk.user_id):
                return True, None
            entry = room_entry_txn(conn, rooms, q.room_id)
            entry["children_state"] = (
                children_txn(conn, rooms, q.room_id, suggested_only=walk.suggested_only)
                if entry.get("room_type") == SPACE
                else []
            )
            return True, entry

        held, entry = await rooms.database.read(local)
        if not held:  # not ours: from the parent's answer, or ask its servers
            at_bottom = walk.max_depth is not None and queued.depth >= walk.max_depth
            if queued.remote is not None and (queued.remote.get("room_type") != SPACE or at_bottom):
                entry = {**queued.remote, "children_state": []}
            else:
                if asked == MAX_REMOTE_ROOMS:
                    break  # the rest on the next page
                asked += 1
                remote = await fetch_hierarchy(
                    services.federation_client,
                    queued.via,
                    queued.room_id,
                    suggested_only=walk.suggested_only,
                )
                entry = None
                if remote is not None:
                    entry = {**remote.room, "children_state": remote.children_state}
                    children_entries, inaccessible = remote.children, remote.inaccessible
            if entry is not None and not await _remote_accessible(services, walk.user_id, entry):
                entry = None
        walk.queue.pop()
        walk.processed.add(queued.room_id)
        if entry is None:
            continue
        found.append(entry)
        if walk.max_depth is None or queued.depth < walk.max_depth:
            walk.queue.extend(
                _Queued(
                    child["state_key"],
                    tuple(v for v in child["content"]["via"] if is_valid_server_name(v)),
                    queued.depth + 1,
                    children_entries.get(child["state_key"]),
                )
                for child in reversed(entry["children_state"])
                if child["state_key"] not in inaccessible
            )
    return found


async def _remote_accessible(services: Services, user_id: str, entry: dict[str, Any]) -> bool:
    """May the user see a room another server told us of (Synapse's
    `_is_remote_room_accessible`)?"""
    if is_open_entry(entry):
        return True
    rooms = services.rooms
    allowed = entry.get("allowed_room_ids") or []

    def txn(conn: Connection) -> bool:
        if any(store_rooms.get_membership(conn, r, user_id) == "join" for r in allowed):
            return True
        return accessible_txn(conn, rooms, entry["room_id"], user_id=user_id)

    return await rooms.database.read(txn)


async def get_room_summary(request: Request) -> Response:
    """# `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`"""
    services = services_of(request)
    requester = await requester_of(request) if access_token(request) is not None else None
    user_id = requester.user_id if requester is not None else None
    room_id, via = await room_and_via(request, request.path_params["room"])
    rooms = services.rooms

    def local(conn: Connection) -> tuple[bool, dict[str, Any] | None]:
        if not holds_room_txn(conn, rooms, room_id):
            return False, None
        if not accessible_txn(conn, rooms, room_id, user_id=user_id):
            return True, None
        return True, room_entry_txn(conn, rooms, room_id)

    held, entry = await rooms.database.read(local)
    if not held:
        if not via:
            raise Unknown("Missing via to query remote room", status=400)
        found = await fetch_hierarchy(services.federation_client, via, room_id, suggested_only=True)
        entry = found.room if found is not None else None
        if entry is not None and not (
            is_open_entry(entry)
            or (user_id is not None and await _remote_accessible(services, user_id, entry))
        ):
            entry = None
    if entry is None:
        raise NotFound("Room not found or is not accessible")
    if user_id is not None:
        membership = await rooms.database.read(store_rooms.get_membership, room_id, user_id)
        entry["membership"] = membership or "leave"
    return json_response(entry)


SUMMARY_UNSTABLE = ("/_matrix/client/unstable/im.nheko.summary",)
ROUTES = [
    ClientRoute("/rooms/{room_id}/hierarchy", get_hierarchy, ("GET",), prefixes=CLIENT_V1),
    ClientRoute("/room_summary/{room}", get_room_summary, ("GET",), auth=False, prefixes=CLIENT_V1),
    ClientRoute(
        "/summary/{room}", get_room_summary, ("GET",), auth=False, prefixes=SUMMARY_UNSTABLE
    ),
    ClientRoute(
        "/rooms/{room}/summary", get_room_summary, ("GET",), auth=False, prefixes=SUMMARY_UNSTABLE
    ),
]
