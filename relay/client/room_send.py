"""Sending events and setting state.

Spec: https://spec.matrix.org/v1.16/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid
(room_send.yaml, room_state.yaml PUT)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.membership import set_member_state
from relay.client.route import ClientRoute
from relay.errors import BadJson
from relay.runtime.http import json_response, read_json_object


async def send_message(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`"""
    content = await read_json_object(request)
    services = services_of(request)
    event_type = request.path_params["event_type"]
    await services.send_limiter.check(requester.user_id)
    redacts = None
    if event_type == "m.room.redaction":
        redacts = content.get("redacts")
        if not isinstance(redacts, str):
            raise BadJson("m.room.redaction needs a string content.redacts; use /redact")
    event_id = await services.rooms.send_event(
        requester.user_id,
        requester.device_id,
        request.path_params["room_id"],
        event_type,
        content,
        txn_id=request.path_params["txn_id"],
        redacts=redacts,
    )
    return json_response({"event_id": event_id})


async def set_room_state(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`"""
    content = await read_json_object(request)
    services = services_of(request)
    event_type = request.path_params["event_type"]
    state_key = request.path_params.get("state_key", "")
    if event_type == "m.room.member":
        event_id = await set_member_state(request, requester, state_key, content)
        return json_response({"event_id": event_id} if event_id is not None else {})
    event_id = await services.rooms.send_event(
        requester.user_id,
        requester.device_id,
        request.path_params["room_id"],
        event_type,
        content,
        state_key=state_key,
    )
    return json_response({"event_id": event_id})


async def redact_event(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`"""
    body = await read_json_object(request)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadJson("reason must be a string")
    # The whole body is the content, as Synapse keeps it (extensions ride along); so it
    # meets the room version's JSON rules like any content. The path's event id wins
    # over a `redacts` in the body.
    content = {k: v for k, v in body.items() if k != "redacts"}
    event_id = await services_of(request).rooms.send_event(
        requester.user_id,
        requester.device_id,
        request.path_params["room_id"],
        "m.room.redaction",
        content,
        txn_id="redact:" + request.path_params["txn_id"],
        redacts=request.path_params["event_id"],
    )
    return json_response({"event_id": event_id})


ROUTES = [
    ClientRoute("/rooms/{room_id}/send/{event_type}/{txn_id}", send_message, ("PUT",)),
    ClientRoute("/rooms/{room_id}/state/{event_type}", set_room_state, ("PUT",)),
    ClientRoute("/rooms/{room_id}/state/{event_type}/{state_key:rest}", set_room_state, ("PUT",)),
    ClientRoute(
        "/rooms/{room_id}/redact/{event_id}/{txn_id}", redact_event, ("PUT",), raw_path=True
    ),
]
