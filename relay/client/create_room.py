"""`POST /createRoom`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3createroom
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.params import is_client_user_id
from relay.client.route import ClientRoute
from relay.errors import BadJson, InvalidParam
from relay.events.ids import is_valid_localpart, server_of
from relay.events.room_versions import DEFAULT_ROOM_VERSION
from relay.rooms.service import PRESETS, RoomConfig
from relay.runtime.http import json_response, read_json_object


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadJson(f"{key} must be a string")
    return value


def parse_create_room(body: dict[str, Any], creator: str) -> RoomConfig:
    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise InvalidParam("visibility must be 'public' or 'private'")
    preset = body.get("preset")
    if preset is None:
        preset = "public_chat" if visibility == "public" else "private_chat"
    if not isinstance(preset, str) or preset not in PRESETS:
        raise InvalidParam(f"Unknown preset {preset!r}")
    version = body.get("room_version", DEFAULT_ROOM_VERSION.identifier)
    if not isinstance(version, str):
        raise BadJson("room_version must be a string")
    invite = body.get("invite", [])
    if not isinstance(invite, list) or not all(is_client_user_id(u) for u in invite):
        raise InvalidParam("invite must be a list of user ids")
    invite_3pid = body.get("invite_3pid", [])
    if not isinstance(invite_3pid, list) or not all(isinstance(i, dict) for i in invite_3pid):
        raise BadJson("invite_3pid must be a list of objects")
    initial_state = body.get("initial_state", [])
    if not isinstance(initial_state, list) or not all(
        isinstance(e, dict)
        and isinstance(e.get("type"), str)
        and isinstance(e.get("content", {}), dict)
        and isinstance(e.get("state_key", ""), str)
        for e in initial_state
    ):
        raise BadJson("initial_state must be a list of state events")
    alias_localpart = _opt_str(body, "room_alias_name")
    if alias_localpart is not None and (
        not alias_localpart
        or ":" in alias_localpart
        or "#" in alias_localpart
        or not is_valid_localpart(alias_localpart.lower(), historical=True)
    ):
        raise InvalidParam("room_alias_name is not a valid alias localpart")
    for key in ("power_level_content_override", "creation_content"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise BadJson(f"{key} must be an object")
    is_direct = body.get("is_direct", False)
    if not isinstance(is_direct, bool):
        raise BadJson("is_direct must be a boolean")
    return RoomConfig(
        creator=creator,
        room_version=version,
        preset=preset,
        visibility=visibility,
        name=_opt_str(body, "name"),
        topic=_opt_str(body, "topic"),
        alias_localpart=alias_localpart,
        invite=tuple(dict.fromkeys(invite)),
        is_direct=is_direct,
        initial_state=tuple(initial_state),
        power_level_content_override=body.get("power_level_content_override"),
        creation_content=body.get("creation_content"),
    )


async def create_room(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/createRoom`"""
    body = await read_json_object(request)
    config = parse_create_room(body, requester.user_id)
    services = services_of(request)
    room_id = await services.rooms.create_room(config)
    remote = services.remote_membership
    for invitee in config.invite:
        if server_of(invitee) != services.server_name:
            # Invites to other servers need their signature: the federation /invite.
            await remote.invite(requester.user_id, room_id, invitee, is_direct=config.is_direct)
    return json_response({"room_id": room_id})


ROUTES = [ClientRoute("/createRoom", create_room, ("POST",))]
