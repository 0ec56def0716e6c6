"""Reading one room: a single event, an event's context, the state, the members, and
the list of rooms one is joined to.

Who may read what is relay/rooms/visibility.py's: joined users read the room as it is now,
users who left read it as it was when they left, others only a world_readable room
(M_FORBIDDEN otherwise). An event one may not see is M_NOT_FOUND, as for an unknown
one (the spec's 404 "not found or you do not have permission").

Spec: https://spec.matrix.org/v1.16/client-server-api/#getting-events-for-a-room
(rooms.yaml, event_context.yaml, list_joined_rooms.yaml)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.message_pagination import (
    client_events,
    parse_event_filter,
    parse_limit,
)
from relay.client.route import ClientRoute
from relay.client.tokens import parse_position, position_token
from relay.errors import InvalidParam
from relay.rooms.reads import (
    context_txn,
    event_txn,
    joined_members_txn,
    joined_rooms,
    members_txn,
    read_as,
    state_event_txn,
    state_txn,
)
from relay.runtime.http import json_response

MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


async def get_one_room_event(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`"""
    event = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        event_txn,
        requester.device_id,
        request.path_params["event_id"],
    )
    return json_response(client_events([event])[0])


async def get_event_context(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`"""
    context = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        context_txn,
        requester.device_id,
        request.path_params["event_id"],
        parse_limit(request),
        parse_event_filter(request.query_params.get("filter")),
    )
    return json_response(
        {
            "event": client_events([context.event])[0],
            "events_before": client_events(context.before),
            "events_after": client_events(context.after),
            "start": position_token(context.start),
            "end": position_token(context.end),
            "state": client_events(context.state),
        }
    )


async def get_room_state(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/state`"""
    state = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        state_txn,
    )
    return json_response(client_events(state))


async def get_room_state_with_key(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`

    Also without the state key (it defaults to ""); `format=event` returns the whole
    client event instead of its content."""
    form = request.query_params.get("format", "content")
    if form not in ("content", "event"):
        raise InvalidParam("format must be 'content' or 'event'")
    event = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        state_event_txn,
        request.path_params["event_type"],
        request.path_params.get("state_key", ""),
    )
    formatted = client_events([event])[0]
    return json_response(formatted if form == "event" else formatted["content"])


def _membership_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in MEMBERSHIPS:
        raise InvalidParam(f"{name} must be one of {', '.join(MEMBERSHIPS)}")
    return value


async def get_members_by_room(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/members`"""
    at = request.query_params.get("at")
    members = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        members_txn,
        at=parse_position(at, "at") if at else None,
        membership=_membership_param(request, "membership"),
        not_membership=_membership_param(request, "not_membership"),
    )
    return json_response({"chunk": client_events(members)})


async def get_joined_members_by_room(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/joined_members`"""
    joined = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        joined_members_txn,
        joined=True,
    )
    return json_response({"joined": joined})


async def get_joined_rooms(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/joined_rooms`"""
    rooms: list[Any] = await joined_rooms(services_of(request).rooms, requester.user_id)
    return json_response({"joined_rooms": rooms})


ROUTES = [
    ClientRoute("/rooms/{room_id}/event/{event_id}", get_one_room_event, ("GET",), raw_path=True),
    ClientRoute("/rooms/{room_id}/context/{event_id}", get_event_context, ("GET",), raw_path=True),
    ClientRoute("/rooms/{room_id}/state", get_room_state, ("GET",)),
    ClientRoute("/rooms/{room_id}/state/{event_type}", get_room_state_with_key, ("GET",)),
    ClientRoute(
        "/rooms/{room_id}/state/{event_type}/{state_key:rest}", get_room_state_with_key, ("GET",)
    ),
    ClientRoute("/rooms/{room_id}/members", get_members_by_room, ("GET",)),
    ClientRoute("/rooms/{room_id}/joined_members", get_joined_members_by_room, ("GET",)),
    ClientRoute("/joined_rooms", get_joined_rooms, ("GET",)),
]
