"""Account registration: `/register`, `/register/available` and registration token validity.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#account-registration,
registration.yaml, registration_tokens.yaml):

- `registration.mode` decides: `closed` (the default) refuses every registration with
  403 M_FORBIDDEN, guests included; `token` offers the one flow
  `[m.login.registration_token]`; `open` (labs only) offers `[m.login.dummy]`.
  Guest accounts are never offered (403 M_GUEST_ACCESS_FORBIDDEN).
- The username is downcased first, as Synapse does (`Alice` registers `@alice`; the
  spec asks servers to fold case for new user ids); `/register/available` does not fold
  (upper case there is M_INVALID_USERNAME, as Synapse).
- The username is checked (M_INVALID_USERNAME, M_USER_IN_USE) before any UIA stage,
  and again when the account is created (someone may have taken it meanwhile).
- A registration token's use is reserved (pending) when its stage passes and marked
  completed in the transaction that creates the account; a session that expires
  unfinished gives its use back.
- Every request is rate-limited per client address by the `register` limiter.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.client.uia import UiaSession, UiaSessions, dummy_check
from relay.errors import (
    Forbidden,
    InvalidParam,
    MissingParam,
    Unauthorized,
)
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import registration_tokens as store_tokens

TOKEN_STAGE = "m.login.registration_token"
DUMMY_STAGE = "m.login.dummy"
#: Abandoned registrations hold a token's use this long.
SESSION_TTL_S = 30 * 60
V1 = ("/_matrix/client/v1",)
#: Request fields remembered by the UIA session, with their expected types.
FIELDS: dict[str, type] = {
    "username": str,
    "password": str,
    "device_id": str,
    "initial_device_display_name": str,
    "inhibit_login": bool,
}


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def registration_sessions(database: Database) -> UiaSessions:
    """The UIA sessions of `/register` (one per relay, built by node.py): a session that
    expires gives back the registration token it had reserved."""

    async def give_back_token(session: UiaSession) -> None:
        token = session.data.get("registration_token")
        if token is not None:
            await database.write(store_tokens.release_token, token)

    return UiaSessions(ttl_s=SESSION_TTL_S, on_expire=give_back_token)


def _token_check(services: Services) -> Callable[[dict[str, Any], UiaSession], Awaitable[None]]:
    async def check(auth: dict[str, Any], session: UiaSession) -> None:
        token = auth.get("token")
        if not isinstance(token, str) or not token:
            raise MissingParam("token is required")
        if not await services.database.write(
            lambda conn: store_tokens.reserve_token(conn, token, now_ms=now_ms())
        ):
            raise Unauthorized("Invalid registration token")
        session.data["registration_token"] = token

    return check


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    fields = {}
    for name, kind in FIELDS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise InvalidParam(f"{name} must be a {kind.__name__}")
        fields[name] = value
    username = fields["username"]
    if isinstance(username, str):
        fields["username"] = username.lower()
    return fields


def _require_open(services: Services, kind: str) -> None:
    if kind == "guest":
        # Guest access is out of scope by design (README). The spec's answer when "a
        # particular kind of account is not allowed" is 403 M_FORBIDDEN (Synapse: 403).
        raise Forbidden("Guest accounts are not offered on this server")
    if services.config.registration == "closed":
        raise Forbidden("Registration is disabled on this server")
    if kind != "user":
        raise InvalidParam("kind must be 'user' or 'guest'")


async def register(request: Request) -> Response:
    """# `POST /_matrix/client/v3/register`"""
    services = services_of(request)
    _require_open(services, request.query_params.get("kind", "user"))
    await services.register_limiter.check(client_address(request))
    body = await read_json_object(request)
    fields = _fields(body)
    if fields["username"] is not None:
        await services.accounts.check_username(fields["username"])
    if services.config.registration == "token":
        flows, checks = [[TOKEN_STAGE]], {TOKEN_STAGE: _token_check(services)}
    else:
        flows, checks = [[DUMMY_STAGE]], {DUMMY_STAGE: dummy_check}
    sessions = services.uia_register
    session = await sessions.authenticate(
        body.get("auth"),
        operation="register",
        user_id=None,
        flows=flows,
        checks=checks,
        request=fields,
    )
    wanted = session.request
    if wanted.get("password") is None:
        raise MissingParam("password is required")
    username = wanted.get("username")
    if username is not None:
        localpart = await services.accounts.check_username(username)
    else:
        localpart = "user" + secrets.token_hex(5)
    registered = await services.accounts.register(
        localpart,
        wanted.get("password"),
        device_id=wanted.get("device_id"),
        device_display_name=wanted.get("initial_device_display_name"),
        inhibit_login=bool(wanted.get("inhibit_login")),
        registration_token=session.data.get("registration_token"),
    )
    sessions.finish(session)
    response: dict[str, Any] = {"user_id": registered.user_id, "home_server": services.server_name}
    if registered.access_token is not None:
        response["access_token"] = registered.access_token
        response["device_id"] = registered.device_id
    return json_response(response)


async def check_username_availability(request: Request) -> Response:
    """# `GET /_matrix/client/v3/register/available`"""
    services = services_of(request)
    await services.register_limiter.check(client_address(request))
    username = request.query_params.get("username")
    if not username:
        raise MissingParam("username is required")
    await services.accounts.check_username(username)
    return json_response({"available": True})


async def registration_token_validity(request: Request) -> Response:
    """# `GET /_matrix/client/v1/register/m.login.registration_token/validity`"""
    services = services_of(request)
    if services.config.registration != "token":
        raise Forbidden("Registration tokens are not used on this server")
    await services.register_limiter.check(client_address(request))
    token = request.query_params.get("token")
    if not token:
        raise MissingParam("token is required")
    valid = await services.database.read(
        lambda conn: store_tokens.token_valid(conn, token, now_ms=now_ms())
    )
    return json_response({"valid": valid})


ROUTES = [
    ClientRoute("/register", register, ("POST",), auth=False),
    ClientRoute("/register/available", check_username_availability, ("GET",), auth=False),
    ClientRoute(
        "/register/m.login.registration_token/validity",
        registration_token_validity,
        ("GET",),
        auth=False,
        prefixes=V1,
    ),
]
