"""`PUT /rooms/{roomId}/typing/{userId}`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#typing-notifications (typing.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden
from relay.runtime.http import json_response, read_json_object


async def set_typing(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`"""
    room_id = request.path_params["room_id"]
    if request.path_params["user_id"] != requester.user_id:
        raise Forbidden("Cannot set typing for other users")
    body = await read_json_object(request)
    typing = body.get("typing")
    timeout = body.get("timeout")
    if not isinstance(typing, bool):
        raise BadJson("typing must be a boolean")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
        raise BadJson("timeout must be an integer (milliseconds)")
    services = services_of(request)
    if await services.rooms.membership_of(room_id, requester.user_id) != "join":
        raise Forbidden("You are not joined to this room")
    seconds = timeout / 1000 if timeout is not None else None
    services.typing.set_typing(room_id, requester.user_id, typing, seconds)
    await services.rooms.send_edu(
        room_id, "m.typing", {"room_id": room_id, "user_id": requester.user_id, "typing": typing}
    )
    return json_response({})


ROUTES = [ClientRoute("/rooms/{room_id}/typing/{user_id}", set_typing, ("PUT",))]
