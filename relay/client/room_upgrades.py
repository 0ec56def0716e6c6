"""`POST /rooms/{roomId}/upgrade`.

Errors as Synapse answers them: no `new_version` is 400 M_MISSING_PARAM, a version we
don't know 400 M_UNSUPPORTED_ROOM_VERSION, an unknown room 404 M_NOT_FOUND, a user who may
not send the tombstone 403 M_FORBIDDEN, `additional_creators` (v12+) that is not a list of
user ids 400 M_FORBIDDEN (Synapse's AuthError). What an upgrade does: relay/rooms/upgrade.py.

Spec: https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3roomsroomidupgrade
(room_upgrades.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import Forbidden, InvalidParam, MissingParam, UnsupportedRoomVersion
from relay.events.auth import AuthError, check_additional_creators
from relay.events.room_versions import room_version
from relay.runtime.http import json_response, read_json_object


async def upgrade_room(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/upgrade`"""
    body = await read_json_object(request)
    room_id = request.path_params["room_id"]
    if not room_id.startswith("!"):
        raise InvalidParam(f"{room_id!r} is not a room id")
    if "new_version" not in body:
        raise MissingParam("Missing new_version")
    new_version = body["new_version"]
    if not isinstance(new_version, str):
        raise UnsupportedRoomVersion("new_version must be a room version string")
    additional_creators = body.get("additional_creators")
    rv = room_version(new_version)
    if rv is not None and rv.privileged_creators and additional_creators is not None:
        try:
            check_additional_creators(additional_creators)
        except AuthError as exc:
            # Synapse: 400 with M_FORBIDDEN, before anything is built.
            raise Forbidden(str(exc), status=400) from None
    else:
        additional_creators = None
    new_room_id = await services_of(request).rooms.upgrade_room(
        requester.user_id, room_id, new_version, additional_creators
    )
    return json_response({"replacement_room": new_room_id})


ROUTES = [ClientRoute("/rooms/{room_id}/upgrade", upgrade_room, ("POST",))]
