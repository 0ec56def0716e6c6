"""Changing the password: `POST /account/password`.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#password-management,
password_management.yaml):

- An access token is required (no e-mail or phone reset here) and user-interactive
  auth with `m.login.password` for the requester proves they know the old password.
- `logout_devices` (default true) deletes every other device of the user with its
  access tokens; the requester's own token stays valid.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.client.uia import reauthenticate
from relay.errors import InvalidParam, MissingParam
from relay.runtime.http import json_response, read_json_object

MAX_PASSWORD_LENGTH = 512


async def change_password(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/account/password`"""
    services = services_of(request)
    body = await read_json_object(request)
    new_password = body.get("new_password")
    logout_devices = body.get("logout_devices", True)
    if new_password is None:
        raise MissingParam("new_password is required")
    if not isinstance(new_password, str) or not 0 < len(new_password) <= MAX_PASSWORD_LENGTH:
        raise InvalidParam(f"new_password must be 1-{MAX_PASSWORD_LENGTH} characters")
    if not isinstance(logout_devices, bool):
        raise InvalidParam("logout_devices must be true or false")
    session = await reauthenticate(services, requester.user_id, body.get("auth"), "change_password")
    await services.accounts.change_password(requester, new_password, logout_devices=logout_devices)
    services.uia_account.finish(session)
    return json_response({})


ROUTES = [ClientRoute("/account/password", change_password, ("POST",))]
