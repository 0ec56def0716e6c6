"""Uploading and downloading sync filters.

Spec: https://spec.matrix.org/v1.16/client-server-api/#filtering (filter.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import Forbidden
from relay.runtime.http import json_response, read_json_object


def _own_user(request: Request, requester: Requester, verb: str) -> str:
    user_id = request.path_params["user_id"]
    if user_id != requester.user_id:
        raise Forbidden(f"Cannot {verb} filters for other users")
    return user_id


async def define_filter(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/user/{userId}/filter`"""
    user_id = _own_user(request, requester, "create")
    body = await read_json_object(request)
    filter_id = await services_of(request).sync.create_filter(user_id, body)
    return json_response({"filter_id": filter_id})


async def get_filter(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`"""
    user_id = _own_user(request, requester, "read")
    service = services_of(request).sync
    return json_response(await service.get_filter_json(user_id, request.path_params["filter_id"]))


ROUTES = [
    ClientRoute("/user/{user_id}/filter", define_filter, ("POST",)),
    ClientRoute("/user/{user_id}/filter/{filter_id}", get_filter, ("GET",)),
]
