"""`POST /user_directory/search`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3user_directorysearch
(users.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, MissingParam
from relay.rooms.user_directory import DEFAULT_LIMIT, MAX_LIMIT, search_users
from relay.runtime.http import json_response, read_json_object


async def search_user_directory(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/user_directory/search`"""
    body = await read_json_object(request)
    term = body.get("search_term")
    if term is None:
        raise MissingParam("Missing search_term")
    if not isinstance(term, str):
        raise BadJson("search_term must be a string")
    limit = body.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise BadJson("limit must be a non-negative integer")
    result = await search_users(
        services_of(request).rooms, requester.user_id, term, min(limit, MAX_LIMIT)
    )
    return json_response(result)


ROUTES = [
    ClientRoute("/user_directory/search", search_user_directory, ("POST",)),
]
