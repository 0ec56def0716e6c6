"""Queries other servers make of us (matrix-spec `server-server/query.yaml`).

- `GET /_matrix/federation/v1/query/profile?user_id=&field=`: a local user's public profile
  (`displayname`, `avatar_url`); with `field`, only that field. Unknown or deactivated users,
  and a field the user has not set, are 404 `M_NOT_FOUND`; a user of another server is 400.

Spec: https://spec.matrix.org/v1.16/server-server-api/#get_matrixfederationv1queryprofile
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import InvalidParam, MissingParam, NotFound
from relay.events.ids import parse_user_id
from relay.http import json_response
from relay.services import Services


def _services(request: Request) -> Services:
    return request.app.state.services


async def query_profile(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/query/profile`"""
    services = _services(request)
    user_id = request.query_params.get("user_id")
    if not user_id:
        raise MissingParam("Missing user_id")
    try:
        _, server_name = parse_user_id(user_id)
    except ValueError:
        raise InvalidParam(f"{user_id!r} is not a user id") from None
    if server_name != services.server_name:
        raise InvalidParam(f"{user_id} is not a user of {services.server_name}")
    profile = await services.accounts.profile(user_id)
    field = request.query_params.get("field")
    if field is None:
        return json_response(profile)
    if field not in profile:
        raise NotFound(f"No {field} in this profile")
    return json_response({field: profile[field]})
