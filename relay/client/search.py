"""`POST /search`: server-side search of the rooms one is joined to (Element's message
search in unencrypted rooms).

The request is parsed and the page read by relay/rooms/search.py (the rules live there);
this module reads the body and `next_batch`, and renders the answer: events in the client
format, context tokens as /context gives them.

Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-search (search.yaml)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.message_pagination import client_events
from relay.client.route import ClientRoute
from relay.client.tokens import position_token
from relay.rooms.search import (
    ResultContext,
    parse_batch,
    parse_search_request,
    search,
)
from relay.runtime.http import json_response, read_json_object
from relay.sync.account_data import ignored_users_txn


def _context(context: ResultContext | None) -> dict[str, Any]:
    if context is None:
        return {}
    out: dict[str, Any] = {
        "events_before": client_events(context.before),
        "events_after": client_events(context.after),
        "start": position_token(context.start),
        "end": position_token(context.end),
    }
    if context.profile_info is not None:
        out["profile_info"] = context.profile_info
    return out


async def search_events(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/search`"""
    query = parse_search_request(await read_json_object(request))
    raw_batch = request.query_params.get("next_batch")
    batch = parse_batch(raw_batch) if raw_batch else None
    found = await search(
        services_of(request).rooms,
        requester.user_id,
        requester.device_id,
        query,
        batch,
        ignored_users_txn,
    )
    room_events: dict[str, Any] = {
        "results": [
            {
                "rank": result.rank,
                "result": client_events([result.event])[0],
                "context": _context(result.context),
            }
            for result in found.results
        ],
        "count": found.count,
        "highlights": list(found.highlights),
    }
    if found.state:
        room_events["state"] = {room: client_events(s) for room, s in found.state.items()}
    if found.groups:
        room_events["groups"] = found.groups
    if found.next_batch is not None:
        room_events["next_batch"] = found.next_batch
    return json_response({"search_categories": {"room_events": room_events}})


ROUTES = [
    ClientRoute("/search", search_events, ("POST",)),
]
