"""`GET /rooms/{roomId}/messages`: paging through a room's history, plus the helpers
the other room-reading handlers share (filters, limits, tokens, client formatting).

Pages are in topological order, (depth, stream_ordering), as Synapse's
(relay/rooms/reads.py). `from`/`to` are stream tokens (`s<N>`, a sync token `s<N>_<t>`
too) or topological ones (`t<depth>-<stream>...`, relay/client/tokens.py): backwards
from `s<N>` returns the events stored up to N, newest first; forwards, those stored
after N, oldest first; `end` is a topological token that keeps that bound. `end` is
left out once the start of the room (or of what the user may see) is reached, so
clients stop paginating there. Backwards, a page that reaches the beginning of what we
hold of a room joined over federation first fetches older history (/backfill, through
the `backfill` service node.py registers); if that fails, the page is what we have.

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3roomsroomidmessages
(message_pagination.yaml)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.format import render_view
from relay.client.params import int_query
from relay.client.route import ClientRoute
from relay.client.tokens import parse_position, position_token
from relay.errors import BadJson, InvalidParam
from relay.events.canonical import parse_json_strict
from relay.rooms import filters
from relay.rooms.filters import EventFilter
from relay.rooms.reads import NO_FILTER, Direction, EventView, messages
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


def parse_limit(request: Request, default: int = DEFAULT_LIMIT, cap: int = MAX_LIMIT) -> int:
    """The `limit` query parameter: an integer >= 0, capped. M_INVALID_PARAM otherwise."""
    if request.query_params.get("limit") == "":
        return default
    return min(int_query(request, "limit", default), cap)


def parse_event_filter(raw: str | None) -> EventFilter:
    """The `filter` query parameter: a JSON RoomEventFilter. M_BAD_JSON if malformed."""
    if not raw:
        return NO_FILTER
    try:
        body = parse_json_strict(raw.encode("utf-8"))
    except ValueError:
        raise BadJson("filter must be a JSON object") from None
    return filters.parse_event_filter(body, "filter")


def client_events(events: Iterable[EventView]) -> list[dict[str, Any]]:
    """Events in the client format (`render_view`)."""
    now = now_ms()
    return [render_view(event, now_ms=now) for event in events]


async def get_room_events(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/messages`"""
    room_id = request.path_params["room_id"]
    query = request.query_params
    given_dir = query.get("dir", "f")  # required by the spec; Synapse defaults to "f"
    if given_dir not in ("b", "f"):
        raise InvalidParam("dir must be 'b' or 'f'")
    direction: Direction = "b" if given_dir == "b" else "f"
    from_token = query.get("from") or None
    start = parse_position(from_token, "from") if from_token else None
    to = parse_position(query["to"], "to") if query.get("to") else None
    limit = parse_limit(request)
    event_filter = parse_event_filter(query.get("filter"))
    services = services_of(request)
    page = await messages(
        services.rooms,
        services.backfill,
        requester.user_id,
        room_id,
        requester.device_id,
        direction=direction,
        start=start,
        bound=to,
        limit=limit,
        event_filter=event_filter,
    )
    body: dict[str, Any] = {
        "start": from_token or position_token(page.start),
        "chunk": client_events(page.events),
    }
    if page.end is not None:
        body["end"] = position_token(page.end)
    if event_filter.lazy_load_members:
        body["state"] = client_events(page.state)
    return json_response(body)


ROUTES = [
    ClientRoute("/rooms/{room_id}/messages", get_room_events, ("GET",)),
]
