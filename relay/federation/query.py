"""Queries other servers make of us (matrix-spec `server-server/query.yaml`).

- `GET /_matrix/federation/v1/query/profile?user_id=&field=`: a local user's public profile
  (`displayname`, `avatar_url`); with `field`, only that field. Unknown or deactivated users,
  and a field the user has not set, are 404 `M_NOT_FOUND`; a user of another server is 400.

Spec: https://spec.matrix.org/v1.16/server-server-api/#get_matrixfederationv1queryprofile
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import InvalidParam, MissingParam, NotFound
from relay.events.ids import parse_user_id, server_of
from relay.rooms import directory
from relay.runtime.http import json_response, read_json_object
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


async def query_directory(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/query/directory?room_alias=`"""
    services = _services(request)
    alias = request.query_params.get("room_alias")
    if not alias:
        raise MissingParam("Missing room_alias")
    if server_of(alias) != services.server_name:
        raise InvalidParam(f"{alias} is not an alias of {services.server_name}")
    return json_response(await directory.resolve_alias(services.rooms, alias))


async def public_rooms(request: Request, origin: str) -> Response:
    """# `GET|POST /_matrix/federation/v1/publicRooms`"""
    services = _services(request)
    if request.method == "POST":
        body = await read_json_object(request, optional=True) or {}
        given = body.get("filter")
        search: dict[str, Any] = given if isinstance(given, dict) else {}
        term = search.get("generic_search_term")
        limit, since = body.get("limit"), body.get("since")
    else:
        term = None
        limit, since = request.query_params.get("limit"), request.query_params.get("since")
    try:
        limit_value = int(limit) if limit is not None else None
    except (TypeError, ValueError):
        raise InvalidParam("limit must be an integer") from None
    page = await directory.public_rooms(
        services.rooms,
        limit=limit_value,
        since=since if isinstance(since, str) else None,
        search_term=term if isinstance(term, str) else None,
    )
    return json_response(page)
