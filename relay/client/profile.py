"""User profiles: display name and avatar URL, and their copies in room membership.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#profiles, profile.yaml):

- Profiles are public: reading needs no access token. Only local users have one here;
  an unknown (or deactivated) user, or an unset field, is M_NOT_FOUND.
- Of the v1.16 profile fields only `displayname` and `avatar_url` are stored; other
  keys are refused with M_FORBIDDEN (capabilities say so in `m.profile_fields`).
- Only the user may change their profile. After a change the user's `m.room.member`
  join event is re-sent in every room they are joined to, carrying the new
  `displayname`/`avatar_url` (spec: "Events on change of profile information").
  A room that refuses the event is logged and skipped; the profile change stands.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import PROFILE_FIELDS, Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import rooms as store_rooms

log = logging.getLogger(__name__)

MAX_LENGTH = {"displayname": 256, "avatar_url": 1000}


async def _rejoin_everywhere(services: Services, user_id: str) -> None:
    """Re-send the user's join in each joined room, with the profile now stored."""
    room_ids = await services.database.read(store_rooms.rooms_for_user, user_id, "join")
    for room_id in room_ids:
        try:
            await services.rooms.update_membership(user_id, room_id, user_id, "join")
        except MatrixError as exc:
            log.warning("profile update of %s not sent to %s: %s", user_id, room_id, exc)


async def _set_field(request: Request, requester: Requester, value: Any) -> Response:
    services = services_of(request)
    user_id, key = request.path_params["user_id"], request.path_params["key_name"]
    if user_id != requester.user_id:
        raise Forbidden("You may only change your own profile")
    if key not in PROFILE_FIELDS:
        raise Forbidden(f"Profile field {key} cannot be set on this server")
    if value is not None and (not isinstance(value, str) or len(value) > MAX_LENGTH[key]):
        raise InvalidParam(f"{key} must be a string of at most {MAX_LENGTH[key]} characters")
    await services.accounts.set_profile_field(user_id, key, value or None)
    await _rejoin_everywhere(services, user_id)
    return json_response({})


async def get_user_profile(request: Request) -> Response:
    """# `GET /_matrix/client/v3/profile/{userId}`"""
    profile = await services_of(request).accounts.profile(request.path_params["user_id"])
    return json_response(profile)


async def get_profile_field(request: Request) -> Response:
    """# `GET /_matrix/client/v3/profile/{userId}/{keyName}`"""
    key = request.path_params["key_name"]
    profile = await services_of(request).accounts.profile(request.path_params["user_id"])
    if key not in profile:
        raise NotFound(f"No {key} in this profile")
    return json_response({key: profile[key]})


async def set_profile_field(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/profile/{userId}/{keyName}`"""
    body = await read_json_object(request)
    key = request.path_params["key_name"]
    if key not in body:
        raise BadJson(f"The body must hold {key}")
    return await _set_field(request, requester, body[key])


async def delete_profile_field(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/profile/{userId}/{keyName}`"""
    return await _set_field(request, requester, None)


ROUTES = [
    ClientRoute("/profile/{user_id}", get_user_profile, ("GET",), auth=False),
    ClientRoute("/profile/{user_id}/{key_name}", get_profile_field, ("GET",), auth=False),
    ClientRoute("/profile/{user_id}/{key_name}", set_profile_field, ("PUT",)),
    ClientRoute("/profile/{user_id}/{key_name}", delete_profile_field, ("DELETE",)),
]
