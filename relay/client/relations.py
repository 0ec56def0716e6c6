"""`GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` and
`GET /rooms/{roomId}/threads` (both `/_matrix/client/v1`).

`/relations` takes `dir` (default `b`), `limit` (default 5, at most 1000), `from`/`to`
(the tokens /messages hands out, a sync token too) and `recurse`; it answers `chunk`,
`next_batch` while more is left, `prev_batch` (the `from` given) and, with `recurse`,
`recursion_depth`. `/threads` takes `include` (`all`|`participated`), `limit` (default
5) and `from` (the `next_batch` of the previous page, `<depth>_<stream>` as Synapse's).
The reading rules are relay/rooms/relation_reads.py's.

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidrelationseventid
(relations.yaml), https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidthreads
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.message_pagination import client_events, parse_limit
from relay.client.route import ClientRoute
from relay.client.tokens import MAX_POSITION, parse_position, position_token
from relay.errors import InvalidParam
from relay.rooms.reads import read_as
from relay.rooms.relation_reads import relations_txn, threads_txn
from relay.runtime.http import json_response

CLIENT_V1 = ("/_matrix/client/v1",)
DEFAULT_LIMIT = 5
MAX_THREADS_LIMIT = 1000
_THREADS_TOKEN = re.compile(r"(-?[0-9]{1,19})_(-?[0-9]{1,19})")


def _bool(request: Request, *names: str) -> bool:
    value = False
    for name in names:
        raw = request.query_params.get(name)
        if raw is None:
            continue
        if raw not in ("true", "false"):
            raise InvalidParam(f"Boolean query parameter {name!r} must be one of ['true', 'false']")
        value = value or raw == "true"
    return value


async def get_relations(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`"""
    params, query = request.path_params, request.query_params
    direction = query.get("dir", "b")
    if direction not in ("b", "f"):
        raise InvalidParam("Query parameter 'dir' must be one of ['b', 'f']")
    from_token = query.get("from") or None
    start = parse_position(from_token, "from") if from_token else None
    bound = parse_position(query["to"], "to") if query.get("to") else None
    recurse = _bool(request, "recurse", "org.matrix.msc3981.recurse")
    page = await read_as(
        services_of(request).rooms,
        requester.user_id,
        params["room_id"],
        relations_txn,
        requester.device_id,
        params["event_id"],
        rel_type=params.get("rel_type"),
        event_type=params.get("event_type"),
        direction=direction,
        start=start,
        bound=bound,
        limit=parse_limit(request, DEFAULT_LIMIT),
        recurse=recurse,
    )
    body: dict[str, Any] = {"chunk": client_events(page.events)}
    if page.next is not None:
        body["next_batch"] = position_token(page.next)
    if from_token is not None:
        body["prev_batch"] = from_token
    if page.recursion_depth is not None:
        body["recursion_depth"] = page.recursion_depth
    return json_response(body)


async def get_threads(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/rooms/{roomId}/threads`"""
    query = request.query_params
    include = query.get("include", "all")
    if include not in ("all", "participated"):
        raise InvalidParam("Query parameter 'include' must be one of ['all', 'participated']")
    before = None
    if query.get("from"):
        match = _THREADS_TOKEN.fullmatch(query["from"])
        if match is None or any(abs(int(g)) > MAX_POSITION for g in match.groups()):
            raise InvalidParam("Invalid from token")
        before = (int(match[1]), int(match[2]))
    page = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        threads_txn,
        requester.device_id,
        participated=include == "participated",
        before=before,
        limit=parse_limit(request, DEFAULT_LIMIT, MAX_THREADS_LIMIT),
    )
    body: dict[str, Any] = {"chunk": client_events(page.roots)}
    if page.next is not None:
        body["next_batch"] = f"{page.next[0]}_{page.next[1]}"
    return json_response(body)


ROUTES = [
    ClientRoute("/rooms/{room_id}/threads", get_threads, ("GET",), prefixes=CLIENT_V1),
    ClientRoute(
        "/rooms/{room_id}/relations/{event_id}", get_relations, ("GET",), prefixes=CLIENT_V1
    ),
    ClientRoute(
        "/rooms/{room_id}/relations/{event_id}/{rel_type}",
        get_relations,
        ("GET",),
        prefixes=CLIENT_V1,
    ),
    ClientRoute(
        "/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}",
        get_relations,
        ("GET",),
        prefixes=CLIENT_V1,
    ),
]
