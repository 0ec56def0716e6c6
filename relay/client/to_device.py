"""`PUT /sendToDevice/{eventType}/{txnId}` (matrix-spec `client-server/to_device.yaml`).

Delivery, idempotency and federation are relay/e2ee/to_device.py's; messages reach the
recipients' /sync `to_device` section.

Spec: https://spec.matrix.org/v1.16/client-server-api/#put_matrixclientv3sendtodeviceeventtypetxnid
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import InvalidParam
from relay.runtime.http import json_response, read_json_object


async def send_to_device(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`"""
    body = await read_json_object(request)
    messages = body.get("messages")
    if not isinstance(messages, dict) or not all(
        isinstance(user_id, str)
        and user_id.startswith("@")
        and ":" in user_id
        and isinstance(devices, dict)
        and all(isinstance(content, dict) for content in devices.values())
        for user_id, devices in messages.items()
    ):
        raise InvalidParam("messages must map user ids to {device_id: content}")
    await services_of(request).to_device.send(
        requester.user_id,
        requester.device_id,
        request.path_params["event_type"],
        request.path_params["txn_id"],
        messages,
    )
    return json_response({})


ROUTES = [
    ClientRoute("/sendToDevice/{event_type}/{txn_id}", send_to_device, ("PUT",)),
]
