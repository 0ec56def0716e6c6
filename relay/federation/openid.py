"""`GET /_matrix/federation/v1/openid/userinfo?access_token=`: who an OpenID token
(relay/client/openid.py) was made for. Asked by a third party, not a server: no X-Matrix.
No token is 401 `M_MISSING_TOKEN`; an unknown or expired one 401 `M_UNKNOWN_TOKEN`, as
Synapse answers.

Spec: https://spec.matrix.org/v1.16/server-server-api/#openid
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import MissingToken, UnknownToken
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response
from relay.services import Services
from store import openid_tokens as store_openid


async def userinfo(request: Request) -> Response:
    """# `GET /_matrix/federation/v1/openid/userinfo`"""
    services: Services = request.app.state.services
    token = request.query_params.get("access_token")
    if not token:
        raise MissingToken("Access Token required")
    now = now_ms()
    user_id = await services.database.read(
        lambda conn: store_openid.get_openid_user(conn, token, now)
    )
    if user_id is None:
        raise UnknownToken("Access Token unknown or expired")
    return json_response({"sub": user_id})
