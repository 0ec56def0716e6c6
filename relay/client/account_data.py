"""Global and per-room account data.

Spec: https://spec.matrix.org/v1.16/client-server-api/#client-config (account-data.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import Forbidden, InvalidParam
from relay.runtime.http import json_response, read_json_object


def _target(request: Request, requester: Requester) -> tuple[str, str, str]:
    """(user_id, room_id or '', type) of the request; only your own data."""
    user_id = request.path_params["user_id"]
    if user_id != requester.user_id:
        raise Forbidden("Cannot access account data of other users")
    room_id = request.path_params.get("room_id", "")
    if "room_id" in request.path_params and not room_id.startswith("!"):
        raise InvalidParam(f"{room_id!r} is not a room id")
    return user_id, room_id, request.path_params["type"]


async def get_account_data(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/user/{userId}/account_data/{type}` (and the
    `/rooms/{roomId}/account_data/{type}` form)"""
    user_id, room_id, type_ = _target(request, requester)
    service = services_of(request).account_data
    return json_response(await service.get(user_id, type_, room_id))


async def set_account_data(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/user/{userId}/account_data/{type}` (and the
    `/rooms/{roomId}/account_data/{type}` form)"""
    user_id, room_id, type_ = _target(request, requester)
    content = await read_json_object(request)
    await services_of(request).account_data.put(user_id, type_, content, room_id)
    return json_response({})


ROUTES = [
    ClientRoute("/user/{user_id}/account_data/{type}", get_account_data, ("GET",)),
    ClientRoute("/user/{user_id}/account_data/{type}", set_account_data, ("PUT",)),
    ClientRoute("/user/{user_id}/rooms/{room_id}/account_data/{type}", get_account_data, ("GET",)),
    ClientRoute("/user/{user_id}/rooms/{room_id}/account_data/{type}", set_account_data, ("PUT",)),
]
