"""Serving a room's events to other servers: event, state, state_ids, event_auth,
backfill, get_missing_events, timestamp_to_event.

A server sees a room's events only if the room's server ACL allows it
(`relay.federation.acl`) and one of its users is or was a member; `/event`, `/backfill`
and `/get_missing_events` serve an event the history visibility hides from every user of
the asking server redacted (`relay.rooms.visibility.visible_to_server_txn`); rejected
events are never served as part of the room. An event that a redaction applies to is
served redacted (`RoomService.event_for_servers_txn`); redactions themselves are
served whether they apply or not (servers need the whole DAG).

Spec: https://spec.matrix.org/v1.16/server-server-api/#retrieving-events,
https://spec.matrix.org/v1.16/server-server-api/#backfilling-and-retrieving-missing-events
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import BadJson, Forbidden, InvalidParam, MissingParam, NotFound
from relay.events.ids import create_event_id_of
from relay.events.pdu import Pdu
from relay.events.redaction import redact
from relay.federation.acl import require_allowed_txn
from relay.rooms.service import RoomService
from relay.rooms.visibility import visible_to_server_txn
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import Connection
from store import events as store_events
from store import rooms as store_rooms
from store import state as store_state

MAX_BACKFILL = 100
MAX_MISSING = 100


def _services(request: Request) -> Services:
    return request.app.state.services


def server_may_see_txn(conn: Connection, room_id: str, server: str) -> bool:
    """True if a user of `server` is or ever was in the room (any membership)."""
    return store_rooms.server_was_ever_in_room(conn, room_id, server)


def require_server_txn(conn: Connection, rooms: RoomService, room_id: str, origin: str) -> None:
    """Refuse (403) a server the room's ACL denies, or that was never in the room."""
    require_allowed_txn(rooms, conn, room_id, origin)
    if not server_may_see_txn(conn, room_id, origin):
        raise Forbidden("Server is not in the room")


def _served_txn(conn: Connection, rooms: RoomService, pdus: Iterable[Pdu]) -> list[dict[str, Any]]:
    """The events as other servers get them: redacted where a redaction applies."""
    return [rooms.event_for_servers_txn(conn, pdu) for pdu in pdus]


def _served_to_txn(
    conn: Connection, rooms: RoomService, pdus: list[Pdu], server: str
) -> list[dict[str, Any]]:
    """The room's events as `server` may read them: redacted where a redaction applies, and
    where the history visibility before the event hides it from every user of `server`."""
    visible = visible_to_server_txn(conn, rooms, server, pdus)
    return [
        rooms.event_for_servers_txn(conn, pdu)
        if pdu.event_id in visible
        else redact(pdu.as_dict(), pdu.room_version)
        for pdu in pdus
    ]


def _visible_pdu_txn(conn: Connection, rooms: RoomService, event_id: str, origin: str) -> Pdu:
    row = store_events.get_event_row(conn, event_id)
    if row is None or row["rejected_reason"] is not None:
        raise NotFound(f"Event {event_id} not found")
    require_server_txn(conn, rooms, row["room_id"], origin)
    pdu = rooms.get_pdu_txn(conn, event_id)
    if pdu is None:
        raise NotFound(f"Event {event_id} not found")
    return pdu


def auth_chain_txn(rooms: RoomService, conn: Connection, event_ids: Iterable[str]) -> list[Pdu]:
    """Every event in the auth chains of `event_ids` (not the events themselves).

    In v12 rooms the create event is in no `auth_events` (the room id names it) but is
    still part of every other event's auth chain, as Synapse serves it: also when it is one
    of `event_ids` itself (the state at an event holds it, and so does that state's chain)."""
    starts = list(event_ids)
    seen: set[str] = set()
    stack: list[str] = []
    for event_id in starts:
        stack.extend(store_events.get_auth_event_ids(conn, event_id))
    while stack:
        event_id = stack.pop()
        if event_id in seen:
            continue
        seen.add(event_id)
        stack.extend(store_events.get_auth_event_ids(conn, event_id))
    pdus = rooms.get_pdus_txn(conn, sorted(seen))
    implied = {
        create_event_id_of(pdu.room_id)
        for pdu in [*pdus.values(), *rooms.get_pdus_txn(conn, starts).values()]
        if pdu.room_version.room_id_is_create_event_hash and pdu.type != "m.room.create"
    }
    for event_id in sorted(implied - seen):
        create = rooms.get_pdu_txn(conn, event_id)
        if create is not None:
            pdus[event_id] = create
    return list(pdus.values())


async def get_event(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/event/{eventId}`"""
    services = _services(request)
    event_id = request.path_params["event_id"]
    rooms = services.rooms

    def txn(conn: Connection) -> list[dict[str, Any]]:
        return _served_to_txn(
            conn, rooms, [_visible_pdu_txn(conn, rooms, event_id, origin)], origin
        )

    pdus = await services.database.read(txn)
    return json_response(
        {"origin": services.server_name, "origin_server_ts": now_ms(), "pdus": pdus}
    )


def _state_at_txn(
    conn: Connection, rooms: RoomService, room_id: str, event_id: str, origin: str
) -> tuple[list[Pdu], list[Pdu]]:
    require_server_txn(conn, rooms, room_id, origin)
    pdu = _visible_pdu_txn(conn, rooms, event_id, origin)
    if pdu.room_id != room_id:
        raise NotFound(f"Event {event_id} is not in room {room_id}")
    state = store_state.get_state_before(conn, event_id)
    if state is None:
        raise NotFound(f"State not known at event {event_id}")
    state_pdus = list(rooms.get_pdus_txn(conn, state.values()).values())
    chain = auth_chain_txn(rooms, conn, [p.event_id for p in state_pdus])
    return state_pdus, chain


async def get_room_state(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/state/{roomId}?event_id=`"""
    services = _services(request)
    event_id = request.query_params.get("event_id")
    if not event_id:
        raise MissingParam("event_id is required")
    room_id = request.path_params["room_id"]
    rooms = services.rooms

    def txn(conn: Connection) -> dict[str, Any]:
        state, chain = _state_at_txn(conn, rooms, room_id, event_id, origin)
        return {
            "pdus": _served_txn(conn, rooms, state),
            "auth_chain": _served_txn(conn, rooms, chain),
        }

    return json_response(await services.database.read(txn))


async def get_room_state_ids(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`"""
    services = _services(request)
    event_id = request.query_params.get("event_id")
    if not event_id:
        raise MissingParam("event_id is required")
    room_id = request.path_params["room_id"]
    state, chain = await services.database.read(
        lambda conn: _state_at_txn(conn, services.rooms, room_id, event_id, origin)
    )
    return json_response(
        {"pdu_ids": [p.event_id for p in state], "auth_chain_ids": [p.event_id for p in chain]}
    )


async def get_event_auth(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`"""
    services = _services(request)
    room_id, event_id = request.path_params["room_id"], request.path_params["event_id"]

    def txn(conn: Connection) -> list[dict[str, Any]]:
        require_server_txn(conn, services.rooms, room_id, origin)
        pdu = _visible_pdu_txn(conn, services.rooms, event_id, origin)
        if pdu.room_id != room_id:
            raise NotFound(f"Event {event_id} is not in room {room_id}")
        return _served_txn(conn, services.rooms, auth_chain_txn(services.rooms, conn, [event_id]))

    return json_response({"auth_chain": await services.database.read(txn)})


def _walk_back_txn(
    rooms: RoomService,
    conn: Connection,
    room_id: str,
    start: Iterable[str],
    stop: set[str],
    limit: int,
    include_start: bool,
) -> list[Pdu]:
    """Breadth-first walk over prev_events from `start`, newest (deepest) first."""
    found: dict[str, Pdu] = {}
    frontier = list(start)
    seen = set(frontier) | stop
    if not include_start:
        nxt: list[str] = []
        for event_id in frontier:
            nxt.extend(store_events.get_prev_event_ids(conn, event_id))
        frontier = [e for e in nxt if e not in stop]
        seen |= set(frontier)
    while frontier and len(found) < limit:
        pdus = rooms.get_pdus_txn(conn, frontier)
        rows = {e: store_events.get_event_row(conn, e) for e in pdus}
        ordered = sorted(pdus.values(), key=lambda p: -p.depth)
        nxt = []
        for pdu in ordered:
            row = rows[pdu.event_id]
            if pdu.room_id != room_id or row is None or row["rejected_reason"] is not None:
                continue
            if len(found) >= limit:
                break
            found[pdu.event_id] = pdu
            for prev in pdu.prev_event_ids:
                if prev not in seen:
                    seen.add(prev)
                    nxt.append(prev)
        frontier = nxt
    return sorted(found.values(), key=lambda p: -p.depth)


async def backfill(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`"""
    services = _services(request)
    room_id = request.path_params["room_id"]
    starts = request.query_params.getlist("v")
    if not starts:
        raise MissingParam("v is required")
    given = request.query_params.get("limit")
    if given is None:
        raise MissingParam("limit is required")  # the spec's: required, as Synapse checks
    try:
        limit = min(MAX_BACKFILL, max(1, int(given)))
    except ValueError:
        raise InvalidParam("limit must be an integer") from None

    def txn(conn: Connection) -> list[dict[str, Any]]:
        require_server_txn(conn, services.rooms, room_id, origin)
        pdus = _walk_back_txn(services.rooms, conn, room_id, starts, set(), limit, True)
        return _served_to_txn(conn, services.rooms, pdus, origin)

    pdus = await services.database.read(txn)
    return json_response(
        {"origin": services.server_name, "origin_server_ts": now_ms(), "pdus": pdus}
    )


async def get_missing_events(request: Request, origin: str) -> Response:
    """# `POST /_matrix/federation/v1/get_missing_events/{roomId}`"""
    services = _services(request)
    room_id = request.path_params["room_id"]
    body = await read_json_object(request)
    earliest = body.get("earliest_events", [])
    latest = body.get("latest_events", [])
    if not isinstance(earliest, list) or not isinstance(latest, list):
        raise BadJson("earliest_events and latest_events must be lists")
    try:
        limit = min(MAX_MISSING, max(1, int(body.get("limit", 10))))
        min_depth = int(body.get("min_depth", 0))
    except (TypeError, ValueError):
        raise BadJson("limit and min_depth must be integers") from None

    def txn(conn: Connection) -> list[dict[str, Any]]:
        require_server_txn(conn, services.rooms, room_id, origin)
        pdus = _walk_back_txn(services.rooms, conn, room_id, latest, set(earliest), limit, False)
        # Oldest first, as Synapse sends them.
        kept = sorted((p for p in pdus if p.depth >= min_depth), key=lambda p: p.depth)
        return _served_to_txn(conn, services.rooms, kept, origin)

    return json_response({"events": await services.database.read(txn)})


async def timestamp_to_event(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=`"""
    services = _services(request)
    room_id = request.path_params["room_id"]
    direction = request.query_params.get("dir")
    if direction not in ("f", "b"):
        raise InvalidParam("dir must be f or b")
    try:
        ts = int(request.query_params.get("ts", ""))
    except ValueError:
        raise InvalidParam("ts must be an integer") from None

    def txn(conn: Connection) -> tuple[str, int] | None:
        require_server_txn(conn, services.rooms, room_id, origin)
        # The same query as the client API's: a peer must not learn of events our own
        # timeline hides (soft-failed, rejected, outliers).
        rows = store_events.events_by_timestamp(
            conn, room_id, ts, "f" if direction == "f" else "b", 1
        )
        return (rows[0]["event_id"], rows[0]["origin_server_ts"]) if rows else None

    found = await services.database.read(txn)
    if found is None:
        raise NotFound("No event found")
    return json_response({"event_id": found[0], "origin_server_ts": found[1]})


async def get_extremities(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/unstable/org.edge_relay.mesh/extremities/{roomId}`

    Ours, not the spec's: the room's forward extremities, for LAN gossip (relay/mesh)."""
    services = _services(request)
    room_id = request.path_params["room_id"]

    def txn(conn: Connection) -> list[str]:
        require_server_txn(conn, services.rooms, room_id, origin)
        return store_events.get_forward_extremities(conn, room_id)

    return json_response({"extremities": await services.database.read(txn)})
