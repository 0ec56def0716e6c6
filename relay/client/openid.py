"""`POST /_matrix/client/v3/user/{userId}/openid/request_token`: a token a third party can
check with our federation `/openid/userinfo` (relay/federation/openid.py) to learn who the
user is. Only for oneself; valid an hour, as Synapse's.

Spec: https://spec.matrix.org/v1.16/client-server-api/#openid
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import Forbidden
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from store import openid_tokens as store_openid

EXPIRES_IN_S = 3600


async def request_token(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/user/{userId}/openid/request_token`"""
    services = services_of(request)
    await read_json_object(request, optional=True)
    if request.path_params["user_id"] != requester.user_id:
        raise Forbidden("You may only request an OpenID token for yourself")
    token = secrets.token_urlsafe(24)
    now = now_ms()
    await services.database.write(
        lambda conn: store_openid.put_openid_token(
            conn,
            token=token,
            user_id=requester.user_id,
            expires_ms=now + EXPIRES_IN_S * 1000,
            now_ms=now,
        )
    )
    return json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": services.server_name,
            "expires_in": EXPIRES_IN_S,
        }
    )


ROUTES = [ClientRoute("/user/{user_id}/openid/request_token", request_token, ("POST",))]
