"""OpenID: `POST /user/{userId}/openid/request_token`, the token a widget or a call
service hands to a server that asks ours who the user is
(`/_matrix/federation/v1/openid/userinfo`, relay/federation/openid.py).

Rules kept: only for yourself (403 M_FORBIDDEN otherwise); the token lasts an hour
(`Accounts.request_openid_token`) and is not an access token: it opens nothing on the
client API.

Spec: https://spec.matrix.org/v1.16/client-server-api/#openid (openid.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import Forbidden
from relay.runtime.http import json_response, read_json_object


async def request_open_id_token(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/user/{userId}/openid/request_token`"""
    if request.path_params["user_id"] != requester.user_id:
        raise Forbidden("Cannot request tokens for other users")
    await read_json_object(request, optional=True)
    services = services_of(request)
    token, expires_in = await services.accounts.request_openid_token(requester.user_id)
    return json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": services.server_name,
            "expires_in": expires_in,
        }
    )


ROUTES = [ClientRoute("/user/{user_id}/openid/request_token", request_open_id_token, ("POST",))]
