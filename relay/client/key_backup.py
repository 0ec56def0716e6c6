"""Server-side key backup: `/room_keys/version` and `/room_keys/keys` at the three
levels (all rooms, a room, a session) (matrix-spec `client-server/key_backup.yaml`).

The rules live in relay/e2ee/key_backup.py.

Spec: https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import InvalidParam, MissingParam
from relay.runtime.http import json_response, read_json_object


def _backup(request: Request) -> Any:
    return services_of(request).key_backup


async def post_room_keys_version(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/room_keys/version`"""
    body = await read_json_object(request)
    version = await _backup(request).create_version(requester.user_id, body)
    return json_response({"version": version})


async def get_room_keys_version(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/room_keys/version[/{version}]`"""
    version = request.path_params.get("version")
    return json_response(await _backup(request).get_version(requester.user_id, version))


async def put_room_keys_version(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/room_keys/version/{version}`"""
    body = await read_json_object(request)
    version = request.path_params["version"]
    await _backup(request).update_version(requester.user_id, version, body)
    return json_response({})


async def delete_room_keys_version(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/room_keys/version/{version}`"""
    await _backup(request).delete_version(requester.user_id, request.path_params["version"])
    return json_response({})


def _where(request: Request) -> tuple[str, str | None, str | None]:
    version = request.query_params.get("version")
    if version is None:
        raise MissingParam("version is required")
    return version, request.path_params.get("room_id"), request.path_params.get("session_id")


def _sessions(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParam("sessions must be an object")
    return value


async def put_room_keys(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]`"""
    body = await read_json_object(request)
    version, room_id, session_id = _where(request)
    if session_id is not None and room_id is not None:
        rooms = {room_id: {session_id: body}}
    elif room_id is not None:
        rooms = {room_id: _sessions(body.get("sessions"))}
    else:
        by_room = body.get("rooms")
        if not isinstance(by_room, dict) or not all(isinstance(r, dict) for r in by_room.values()):
            raise InvalidParam("rooms must map room ids to {sessions}")
        rooms = {rid: _sessions(room.get("sessions")) for rid, room in by_room.items()}
    return json_response(await _backup(request).put_keys(requester.user_id, version, rooms))


async def get_room_keys(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]`"""
    version, room_id, session_id = _where(request)
    return json_response(
        await _backup(request).get_keys(requester.user_id, version, room_id, session_id)
    )


async def delete_room_keys(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]`"""
    version, room_id, session_id = _where(request)
    return json_response(
        await _backup(request).delete_keys(requester.user_id, version, room_id, session_id)
    )


ROUTES = [
    ClientRoute("/room_keys/version", post_room_keys_version, ("POST",)),
    ClientRoute("/room_keys/version", get_room_keys_version, ("GET",)),
    ClientRoute("/room_keys/version/{version}", get_room_keys_version, ("GET",)),
    ClientRoute("/room_keys/version/{version}", put_room_keys_version, ("PUT",)),
    ClientRoute("/room_keys/version/{version}", delete_room_keys_version, ("DELETE",)),
]
for _path in (
    "/room_keys/keys",
    "/room_keys/keys/{room_id}",
    "/room_keys/keys/{room_id}/{session_id}",
):
    ROUTES += [
        ClientRoute(_path, put_room_keys, ("PUT",)),
        ClientRoute(_path, get_room_keys, ("GET",)),
        ClientRoute(_path, delete_room_keys, ("DELETE",)),
    ]
