"""Login, logout and whoami.

Spec: https://spec.matrix.org/v1.16/client-server-api/#login (login.yaml, logout.yaml,
whoami.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester, user_id_for
from relay.client.auth import services_of
from relay.client.public_url import client_base_url
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden, InvalidParam, MissingParam, Unknown
from relay.runtime.http import json_response, read_json_object

LOGIN_FLOWS = [{"type": "m.login.password"}]


async def get_login_flows(request: Request) -> Response:
    """# `GET /_matrix/client/v3/login`"""
    return json_response({"flows": LOGIN_FLOWS})


async def login(request: Request) -> Response:
    """# `POST /_matrix/client/v3/login`"""
    body = await read_json_object(request)
    services = services_of(request)
    if body.get("type") != "m.login.password":
        raise Unknown("Unknown login type", status=400)
    identifier = body.get("identifier")
    if identifier is None and isinstance(body.get("user"), str):
        identifier = {"type": "m.id.user", "user": body["user"]}  # deprecated form
    if identifier is None:
        raise MissingParam("Missing identifier")
    if not isinstance(identifier, dict):
        raise BadJson("identifier must be an object")
    if identifier.get("type") != "m.id.user":
        raise Unknown("Only m.id.user identifiers are supported", status=400)
    user = identifier.get("user")
    password = body.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        raise BadJson("identifier.user and password must be strings")
    device_id = body.get("device_id")
    display_name = body.get("initial_device_display_name")
    if device_id is not None and not isinstance(device_id, str):
        raise InvalidParam("device_id must be a string")
    if display_name is not None and not isinstance(display_name, str):
        raise InvalidParam("initial_device_display_name must be a string")
    if not isinstance(body.get("refresh_token", False), bool):
        raise BadJson("refresh_token must be true or false")
    await services.login_limiter.check(request.client.host if request.client else "")
    user_id = user_id_for(user, services.server_name)
    if user_id is None or not await services.accounts.check_password(user_id, password):
        raise Forbidden("Invalid username or password")
    session = await services.accounts.login(user_id, device_id, display_name)
    base = client_base_url(request, services_of(request).config)
    return json_response(
        {
            "user_id": session.user_id,
            "access_token": session.access_token,
            "device_id": session.device_id,
            "home_server": services.server_name,
            "well_known": {"m.homeserver": {"base_url": base}},
        }
    )


async def logout(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/logout`"""
    await services_of(request).accounts.logout(requester)
    return json_response({})


async def logout_all(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/logout/all`"""
    await services_of(request).accounts.logout_all(requester)
    return json_response({})


async def whoami(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/account/whoami`"""
    return json_response(
        {"user_id": requester.user_id, "device_id": requester.device_id, "is_guest": False}
    )


ROUTES = [
    ClientRoute("/login", get_login_flows, ("GET",), auth=False),
    ClientRoute("/login", login, ("POST",), auth=False),
    ClientRoute("/logout", logout, ("POST",)),
    ClientRoute("/logout/all", logout_all, ("POST",)),
    ClientRoute("/account/whoami", whoami, ("GET",)),
]
