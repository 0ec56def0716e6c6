"""`GET`/`PUT /presence/{userId}/status`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#presence (presence.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden
from relay.runtime.http import json_response, read_json_object


async def set_presence(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/presence/{userId}/status`"""
    if request.path_params["user_id"] != requester.user_id:
        raise Forbidden("Cannot set presence for other users")
    body = await read_json_object(request)
    state = body.get("presence")
    status_msg = body.get("status_msg")
    if not isinstance(state, str):
        raise BadJson("presence must be a string")
    if status_msg is not None and not isinstance(status_msg, str):
        raise BadJson("status_msg must be a string")
    await services_of(request).presence.set_status(requester.user_id, state, status_msg)
    return json_response({})


async def get_presence(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/presence/{userId}/status`"""
    service = services_of(request).presence
    return json_response(
        await service.get_status(requester.user_id, request.path_params["user_id"])
    )


ROUTES = [
    ClientRoute("/presence/{user_id}/status", set_presence, ("PUT",)),
    ClientRoute("/presence/{user_id}/status", get_presence, ("GET",)),
]
