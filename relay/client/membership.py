"""Joining, knocking, inviting, leaving, kicking, banning, unbanning, forgetting.

Leaving a room of another server that we are not in rejects the user's invite to it or
rescinds their knock on it (relay/federation/remote_membership.py).

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-membership
(joining.yaml, knocking.yaml, inviting.yaml, leaving.yaml, kicking.yaml, banning.yaml)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.params import is_client_user_id
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden, InvalidParam, MissingParam, NotFound
from relay.events.ids import (
    is_valid_room_alias,
    is_valid_room_id,
    is_valid_server_name,
    server_of,
)
from relay.events.room_versions import room_version
from relay.runtime.http import json_response, read_json_object

#: Room versions with the two shapes of room id: `!opaque:server` and `!hash` (v12).
ROOM_ID_FORMS = [rv for rv in (room_version("11"), room_version("12")) if rv is not None]


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadJson("reason must be a string")
    return reason


def _target(body: dict[str, Any]) -> str:
    user_id = body.get("user_id")
    if user_id is None:
        raise MissingParam("Missing user_id")
    if not isinstance(user_id, str):
        raise BadJson("user_id must be a string")
    if not is_client_user_id(user_id):
        raise InvalidParam(f"{user_id!r} is not a valid user id")
    return user_id


async def room_and_via(request: Request, room_id_or_alias: str) -> tuple[str, list[str]]:
    """The room a join or knock names by id or alias, and the servers to go through
    (`via`, the deprecated `server_name`, and an alias's servers)."""
    services = services_of(request)
    via = request.query_params.getlist("via") + request.query_params.getlist("server_name")
    if not all(is_valid_server_name(server) for server in via):
        raise InvalidParam("via must be server names")
    if room_id_or_alias.startswith("#"):
        if not is_valid_room_alias(room_id_or_alias):
            raise InvalidParam("Invalid room alias")
        if server_of(room_id_or_alias) == services.server_name:
            room_id, servers = await services.rooms.resolve_alias(room_id_or_alias)
        else:
            room_id, servers = await services.remote_membership.resolve_alias(room_id_or_alias)
        return room_id, via + servers
    if room_id_or_alias.startswith("!"):
        if not any(is_valid_room_id(room_id_or_alias, rv) for rv in ROOM_ID_FORMS):
            raise InvalidParam(f"{room_id_or_alias!r} is not a room id")
        return room_id_or_alias, via
    raise InvalidParam(f"{room_id_or_alias!r} is not a room id or alias")


async def _join(request: Request, requester: Requester, room_id_or_alias: str) -> Response:
    body = await read_json_object(request, optional=True)
    reason = _reason(body)
    services = services_of(request)
    rooms = services.rooms
    remote = services.remote_membership
    room_id, via = await room_and_via(request, room_id_or_alias)
    if await rooms.has_local_members(room_id):
        await rooms.update_membership(
            requester.user_id, room_id, requester.user_id, "join", reason=reason
        )
    elif remote is not None:
        await remote.join(requester.user_id, room_id, via)
    else:
        raise NotFound("No known servers to join this room through")
    return json_response({"room_id": room_id})


async def knock_room(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/knock/{roomIdOrAlias}`

    A room of ours: the knock event, if the auth rules allow it (403 `M_FORBIDDEN` when
    the join rule is not `knock`/`knock_restricted` in a room version that has it, or the
    user is joined, invited or banned). Another server's: `make_knock`/`send_knock`
    through `via` (relay/federation/remote_membership.py)."""
    body = await read_json_object(request, optional=True)
    reason = _reason(body)
    services = services_of(request)
    rooms = services.rooms
    room_id, via = await room_and_via(request, request.path_params["room_id_or_alias"])
    if await rooms.has_local_members(room_id):
        await rooms.update_membership(
            requester.user_id, room_id, requester.user_id, "knock", reason=reason
        )
    else:
        await services.remote_membership.knock(requester.user_id, room_id, via, reason=reason)
    return json_response({"room_id": room_id})


async def join_room_by_id(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/join`"""
    return await _join(request, requester, request.path_params["room_id"])


async def join_room(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/join/{roomIdOrAlias}`"""
    return await _join(request, requester, request.path_params["room_id_or_alias"])


async def invite_user(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/invite`"""
    body = await read_json_object(request, optional=True)
    await _change(request, requester, _target(body), "invite", _reason(body))
    return json_response({})


async def leave_room(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/leave`"""
    body = await read_json_object(request, optional=True)
    await _change(request, requester, requester.user_id, "leave", _reason(body))
    return json_response({})


async def kick(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/kick`"""
    body = await read_json_object(request, optional=True)
    target = _target(body)
    if target == requester.user_id:
        raise Forbidden("Use /leave to leave a room")
    await _change(request, requester, target, "leave", _reason(body))
    return json_response({})


async def ban(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/ban`"""
    body = await read_json_object(request, optional=True)
    await _change(request, requester, _target(body), "ban", _reason(body))
    return json_response({})


async def unban(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/unban`"""
    body = await read_json_object(request, optional=True)
    target = _target(body)
    rooms = services_of(request).rooms
    room_id = request.path_params["room_id"]
    if await rooms.membership_of(room_id, target) != "ban":
        raise Forbidden(f"{target} is not banned")
    await _change(request, requester, target, "leave", _reason(body))
    return json_response({})


async def forget_room(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/rooms/{roomId}/forget`"""
    await services_of(request).rooms.forget(requester.user_id, request.path_params["room_id"])
    return json_response({})


async def set_member_state(
    request: Request, requester: Requester, target: str, content: dict[str, Any]
) -> str | None:
    """`PUT /rooms/{roomId}/state/m.room.member/{userId}`: the membership change the
    content names, through the same paths as the membership endpoints (as Synapse), with
    the rest of the content kept: a joined user updates their own display name or avatar
    in the room this way. The auth rules decide who may do what. The event id (None:
    done by another server: a remote invite, an invite rejected through its server)."""
    membership = content.get("membership")
    if not isinstance(membership, str):
        raise BadJson("Invalid membership (must be a string)")
    if not is_client_user_id(target):
        raise InvalidParam(f"{target!r} is not a valid user id")
    extra = {key: value for key, value in content.items() if key != "membership"}
    return await _change(request, requester, target, membership, None, extra)


async def _change(
    request: Request,
    requester: Requester,
    target: str,
    membership: str,
    reason: str | None,
    extra_content: dict[str, Any] | None = None,
) -> str | None:
    """The membership change; its event id (None: done by another server)."""
    room_id = request.path_params["room_id"]
    services = services_of(request)
    rooms = services.rooms
    remote = services.remote_membership
    if not await rooms.has_local_members(room_id):
        current = await rooms.membership_of(room_id, target)
        if membership == "leave" and target == requester.user_id and current == "invite":
            await remote.reject_invite(requester.user_id, room_id)
            return None
        if membership == "leave" and target == requester.user_id and current == "knock":
            await remote.rescind_knock(requester.user_id, room_id)
            return None
        raise NotFound(f"Unknown room {room_id}")
    if membership == "invite" and server_of(target) != services.server_name:
        await remote.invite(requester.user_id, room_id, target)
        return None
    return await rooms.update_membership(
        requester.user_id, room_id, target, membership, reason=reason, extra_content=extra_content
    )


ROUTES = [
    ClientRoute("/rooms/{room_id}/join", join_room_by_id, ("POST",)),
    ClientRoute("/join/{room_id_or_alias}", join_room, ("POST",)),
    ClientRoute("/knock/{room_id_or_alias}", knock_room, ("POST",)),
    ClientRoute("/rooms/{room_id}/invite", invite_user, ("POST",)),
    ClientRoute("/rooms/{room_id}/leave", leave_room, ("POST",)),
    ClientRoute("/rooms/{room_id}/kick", kick, ("POST",)),
    ClientRoute("/rooms/{room_id}/ban", ban, ("POST",)),
    ClientRoute("/rooms/{room_id}/unban", unban, ("POST",)),
    ClientRoute("/rooms/{room_id}/forget", forget_room, ("POST",)),
]
