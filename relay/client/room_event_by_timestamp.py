"""`GET /rooms/{roomId}/timestamp_to_event` (client API v1): the event nearest a time,
for "jump to date". Only what this server holds is searched (no federation query).

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event
(room_event_by_timestamp.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import InvalidParam, MissingParam
from relay.rooms.reads import event_by_timestamp_txn, read_as
from relay.runtime.http import json_response


async def get_event_by_timestamp(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`"""
    query = request.query_params
    if "ts" not in query or "dir" not in query:
        raise MissingParam("ts and dir are required")
    try:
        ts = int(query["ts"])
    except ValueError:
        raise InvalidParam("ts must be an integer") from None
    if not -(2**63) <= ts < 2**63:
        raise InvalidParam("ts is out of range")
    direction = query["dir"]
    if direction not in ("b", "f"):
        raise InvalidParam("dir must be 'b' or 'f'")
    pdu = await read_as(
        services_of(request).rooms,
        requester.user_id,
        request.path_params["room_id"],
        event_by_timestamp_txn,
        ts,
        direction,
    )
    return json_response({"event_id": pdu.event_id, "origin_server_ts": pdu.origin_server_ts})


ROUTES = [
    ClientRoute(
        "/rooms/{room_id}/timestamp_to_event",
        get_event_by_timestamp,
        ("GET",),
        prefixes=("/_matrix/client/v1",),
    ),
]
