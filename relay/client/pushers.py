"""Pushers (matrix-spec `client-server/pusher.yaml`): `GET /pushers` and
`POST /pushers/set`. What is checked and stored is relay/push/pushers.py's; what is
delivered, relay/push/delivery.py's.

Spec: https://spec.matrix.org/v1.16/client-server-api/#push-notifications
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.runtime.http import json_response, read_json_object


async def get_pushers(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/pushers`"""
    return json_response({"pushers": await services_of(request).pushers.list(requester.user_id)})


async def post_pusher(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/pushers/set`"""
    body = await read_json_object(request)
    await services_of(request).pushers.set(requester, body)
    return json_response({})


ROUTES = [
    ClientRoute("/pushers", get_pushers, ("GET",)),
    ClientRoute("/pushers/set", post_pusher, ("POST",)),
]
