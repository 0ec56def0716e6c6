"""The room directory: aliases, and publishing rooms in the public room list.

Spec: https://spec.matrix.org/v1.16/client-server-api/#room-aliases (directory.yaml),
https://spec.matrix.org/v1.16/client-server-api/#listing-rooms (list_public_rooms.yaml)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, InvalidParam, MissingParam, Unknown
from relay.events.ids import is_valid_room_alias, server_of
from relay.rooms import directory
from relay.runtime.http import json_response, read_json_body, read_json_object


def _alias(request: Request, *, local: bool = False) -> str:
    alias = request.path_params["room_alias"]
    if not is_valid_room_alias(alias):
        raise InvalidParam(f"{alias!r} is not a valid room alias")
    if local and server_of(alias) != services_of(request).server_name:
        raise InvalidParam("Room alias must be local")
    return alias


async def get_room_id_by_alias(request: Request) -> Response:
    """# `GET /_matrix/client/v3/directory/room/{roomAlias}`"""
    alias = _alias(request)
    return json_response(await directory.resolve_alias(services_of(request).rooms, alias))


async def set_room_alias(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/directory/room/{roomAlias}`"""
    alias = _alias(request, local=True)
    body = await read_json_object(request)
    room_id = body.get("room_id")
    if room_id is None:
        raise MissingParam("Missing room_id")
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        raise InvalidParam("room_id must be a room id")
    await directory.create_alias(services_of(request).rooms, requester.user_id, alias, room_id)
    return json_response({})


async def delete_room_alias(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/directory/room/{roomAlias}`"""
    alias = _alias(request, local=True)
    await directory.delete_alias(services_of(request).rooms, requester.user_id, alias)
    return json_response({})


async def get_local_aliases(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/rooms/{roomId}/aliases`"""
    aliases = await directory.local_aliases(
        services_of(request).rooms, requester.user_id, request.path_params["room_id"]
    )
    return json_response({"aliases": aliases})


async def get_room_visibility_on_directory(request: Request) -> Response:
    """# `GET /_matrix/client/v3/directory/list/room/{roomId}`"""
    rooms = services_of(request).rooms
    visibility = await directory.room_visibility(rooms, request.path_params["room_id"])
    return json_response({"visibility": visibility})


async def set_room_visibility_on_directory(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/directory/list/room/{roomId}`"""
    body = await read_json_body(request)
    if not isinstance(body, dict):
        raise BadJson("Content must be a JSON object.")
    visibility = body.get("visibility", "public")
    if visibility not in ("public", "private"):
        raise InvalidParam("visibility must be 'public' or 'private'")
    await directory.set_room_visibility(
        services_of(request).rooms, requester.user_id, request.path_params["room_id"], visibility
    )
    return json_response({})


def _check_server(request: Request, server: Any) -> None:
    if server not in (None, "", services_of(request).server_name):
        raise Unknown(f"Can't fetch the room directory of {server}", status=502)


def _limit(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidParam("limit must be an integer") from None
    if limit < 0:
        raise InvalidParam("limit must not be negative")
    return limit


async def get_public_rooms(request: Request) -> Response:
    """# `GET /_matrix/client/v3/publicRooms`"""
    query = request.query_params
    _check_server(request, query.get("server"))
    body = await directory.public_rooms(
        services_of(request).rooms, limit=_limit(query.get("limit")), since=query.get("since")
    )
    return json_response(body)


async def query_public_rooms(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/publicRooms`"""
    _check_server(request, request.query_params.get("server"))
    body = await read_json_object(request)
    search = body.get("filter") or {}
    if not isinstance(search, dict):
        raise BadJson("filter must be an object")
    term = search.get("generic_search_term")
    room_types = search.get("room_types")
    if term is not None and not isinstance(term, str):
        raise BadJson("filter.generic_search_term must be a string")
    if room_types is not None and not (
        isinstance(room_types, list) and all(t is None or isinstance(t, str) for t in room_types)
    ):
        raise BadJson("filter.room_types must be a list of strings or nulls")
    since = body.get("since")
    if since is not None and not isinstance(since, str):
        raise BadJson("since must be a string")
    page = await directory.public_rooms(
        services_of(request).rooms,
        limit=_limit(body.get("limit")),
        since=since,
        search_term=term,
        room_types=room_types,
    )
    return json_response(page)


ROUTES = [
    ClientRoute("/directory/room/{room_alias}", get_room_id_by_alias, ("GET",), auth=False),
    ClientRoute("/directory/room/{room_alias}", set_room_alias, ("PUT",)),
    ClientRoute("/directory/room/{room_alias}", delete_room_alias, ("DELETE",)),
    ClientRoute("/rooms/{room_id}/aliases", get_local_aliases, ("GET",)),
    ClientRoute(
        "/directory/list/room/{room_id}",
        get_room_visibility_on_directory,
        ("GET",),
        auth=False,
    ),
    ClientRoute("/directory/list/room/{room_id}", set_room_visibility_on_directory, ("PUT",)),
    ClientRoute("/publicRooms", get_public_rooms, ("GET",), auth=False),
    ClientRoute("/publicRooms", query_public_rooms, ("POST",)),
]
