"""Room tagging: `GET /user/{userId}/rooms/{roomId}/tags`, `PUT`/`DELETE .../tags/{tag}`.

Element's Favourites and Low priority are the tags `m.favourite` and `m.lowpriority`.
The tags are the room's `m.tag` account data (relay/sync/account_data.py), so they reach
every device in /sync.

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-tagging (tags.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import Forbidden, InvalidParam
from relay.runtime.http import json_response, read_json_object


def _target(request: Request, requester: Requester) -> tuple[str, str]:
    """(user_id, room_id) of the request: only your own tags."""
    user_id = request.path_params["user_id"]
    if user_id != requester.user_id:
        raise Forbidden("Cannot access tags of other users")
    room_id = request.path_params["room_id"]
    if not room_id.startswith("!"):
        raise InvalidParam(f"{room_id!r} is not a room id")
    return user_id, room_id


async def get_room_tags(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`"""
    user_id, room_id = _target(request, requester)
    return json_response({"tags": await services_of(request).account_data.tags(user_id, room_id)})


async def set_room_tag(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`"""
    user_id, room_id = _target(request, requester)
    body = await read_json_object(request)
    await services_of(request).account_data.add_tag(
        user_id, room_id, request.path_params["tag"], body
    )
    return json_response({})


async def delete_room_tag(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`"""
    user_id, room_id = _target(request, requester)
    await services_of(request).account_data.remove_tag(user_id, room_id, request.path_params["tag"])
    return json_response({})


ROUTES = [
    ClientRoute("/user/{user_id}/rooms/{room_id}/tags", get_room_tags, ("GET",)),
    ClientRoute("/user/{user_id}/rooms/{room_id}/tags/{tag}", set_room_tag, ("PUT",)),
    ClientRoute("/user/{user_id}/rooms/{room_id}/tags/{tag}", delete_room_tag, ("DELETE",)),
]
