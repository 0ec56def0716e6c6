"""`GET /_matrix/federation/v1/openid/userinfo?access_token=`: who holds an OpenID token.

Not a signed request: the asker is a widget or call service, not necessarily a server.
A missing token is 401 M_MISSING_TOKEN, an unknown or expired one 401 M_UNKNOWN_TOKEN
(as Synapse); the answer is `{"sub": user_id}` and nothing more.

Spec: https://spec.matrix.org/v1.16/server-server-api/#openid (openid.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import MissingToken, UnknownToken
from relay.runtime.http import json_response
from relay.services import Services


async def exchange_open_id_token(request: Request) -> Response:
    """# `GET /_matrix/federation/v1/openid/userinfo`"""
    services: Services = request.app.state.services
    token = request.query_params.get("access_token")
    if not token:
        raise MissingToken("Access token required")
    user_id = await services.accounts.openid_user(token)
    if user_id is None:
        raise UnknownToken("Access token unknown or expired")
    return json_response({"sub": user_id})
