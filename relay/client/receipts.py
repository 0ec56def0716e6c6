"""Read receipts and read markers.

Spec: https://spec.matrix.org/v1.16/client-server-api/#receipts (receipts.yaml),
https://spec.matrix.org/v1.16/client-server-api/#fully-read-markers (read_markers.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, InvalidParam
from relay.runtime.http import json_response, read_json_body, read_json_object
from relay.sync.receipts import MARKER_TYPES


async def post_receipt(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`"""
    receipt_type = request.path_params["receipt_type"]
    if receipt_type not in MARKER_TYPES:
        raise InvalidParam(f"Unknown receipt type {receipt_type}")
    # Older clients send no body at all.
    body = await read_json_body(request, empty={})
    if not isinstance(body, dict):
        raise BadJson("Content must be a JSON object.")
    thread_id = body.get("thread_id")
    if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
        raise InvalidParam("thread_id field must be a non-empty string")
    if receipt_type == "m.fully_read":
        thread_id = None
    await services_of(request).receipts.set_markers(
        requester.user_id,
        request.path_params["room_id"],
        {receipt_type: request.path_params["event_id"]},
        thread_id,
    )
    return json_response({})


async def set_read_marker(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/read_markers`"""
    body = await read_json_object(request)
    markers = {}
    for key in MARKER_TYPES:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadJson(f"{key} must be an event id")
        markers[key] = value
    if markers:
        await services_of(request).receipts.set_markers(
            requester.user_id, request.path_params["room_id"], markers
        )
    return json_response({})


ROUTES = [
    ClientRoute(
        "/rooms/{room_id}/receipt/{receipt_type}/{event_id}", post_receipt, ("POST",), raw_path=True
    ),
    ClientRoute("/rooms/{room_id}/read_markers", set_read_marker, ("POST",)),
]
