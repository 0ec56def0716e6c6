"""Synapse's shared-secret registration, `/_synapse/admin/v1/register`, for the tools
that speak it (`register_new_matrix_user`, test harnesses).

Rules kept (Synapse `synapse/rest/admin/users.py`, `UserRegisterServlet`):

- `GET` hands out a nonce; a nonce is accepted once, within `NONCE_TIMEOUT_S` (60 s),
  and is spent even by a request that then fails.
- `POST {nonce, username, password, admin, mac, displayname?, user_type?}` is accepted
  only if `mac` is the hex HMAC-SHA1, keyed with `registration.shared_secret`, of
  `nonce \\0 username \\0 password \\0 ("admin" | "notadmin") [\\0 user_type]`.
- Unset `registration.shared_secret` disables the endpoint (400, as Synapse). It works
  whatever `registration.mode` says: knowing the secret is the server admin's power.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import valid_new_localpart
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden, InvalidParam, Unknown
from relay.runtime.http import json_response, read_json_object
from relay.services import Services

NONCE_TIMEOUT_S = 60
MAX_NONCES = 10_000
ADMIN_V1 = ("/_synapse/admin/v1",)


class Nonces:
    """Single-use nonces that expire after `timeout_s`."""

    def __init__(
        self, timeout_s: float = NONCE_TIMEOUT_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout_s = timeout_s
        self.clock = clock
        self._issued: dict[str, float] = {}

    def issue(self) -> str:
        self._sweep()
        if len(self._issued) >= MAX_NONCES:
            raise Unknown("Too many registration nonces outstanding", status=503)
        nonce = secrets.token_hex(64)
        self._issued[nonce] = self.clock()
        return nonce

    def take(self, nonce: str) -> bool:
        """True iff `nonce` was issued and is unexpired; it can't be taken again."""
        self._sweep()
        return self._issued.pop(nonce, None) is not None

    def _sweep(self) -> None:
        now = self.clock()
        for nonce, issued in list(self._issued.items()):
            if now - issued > self.timeout_s:
                del self._issued[nonce]


def registration_mac(
    secret: str, nonce: str, username: str, password: str, admin: bool, user_type: str | None
) -> str:
    """The hex HMAC-SHA1 a client sends as `mac` (Synapse's exact byte layout)."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    parts = [nonce, username, password, "admin" if admin else "notadmin"]
    if user_type:
        parts.append(user_type)
    mac.update(b"\x00".join(part.encode("utf-8") for part in parts))
    return mac.hexdigest()


def _nonces(services: Services) -> Nonces:
    if "shared_secret_nonces" not in services.extra:
        services.extra["shared_secret_nonces"] = Nonces()
    return services.extra["shared_secret_nonces"]


def _secret(services: Services) -> str:
    secret = services.config.registration_shared_secret
    if not secret:
        raise Unknown("Shared secret registration is not enabled", status=400)
    return secret


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise BadJson(f"{name} must be specified")
    if not isinstance(value, str) or len(value) > 512 or "\x00" in value:
        raise InvalidParam(f"Invalid {name}")
    return value


async def get_nonce(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/register`"""
    services = services_of(request)
    _secret(services)
    return json_response({"nonce": _nonces(services).issue()})


async def register_with_shared_secret(request: Request) -> Response:
    """# `POST /_synapse/admin/v1/register`"""
    services = services_of(request)
    secret = _secret(services)
    body = await read_json_object(request)
    nonce = body.get("nonce")
    if not isinstance(nonce, str):
        raise BadJson("nonce must be specified")
    if not _nonces(services).take(nonce):
        raise Unknown("unrecognised nonce", status=400)
    username, password = _string(body, "username"), _string(body, "password")
    admin = bool(body.get("admin"))
    user_type, displayname, mac = body.get("user_type"), body.get("displayname"), body.get("mac")
    if user_type is not None and not isinstance(user_type, str):
        raise InvalidParam("Invalid user type")
    if displayname is not None and not isinstance(displayname, str):
        raise InvalidParam("displayname must be a string")
    if not isinstance(mac, str):
        raise BadJson("mac must be specified")
    want = registration_mac(secret, nonce, username, password, admin, user_type)
    if not hmac.compare_digest(want.encode("ascii"), mac.encode("ascii", "replace")):
        raise Forbidden("HMAC incorrect")
    localpart = valid_new_localpart(username.lower(), services.server_name)
    registered = await services.accounts.register(
        localpart, password, admin=admin, displayname=displayname
    )
    return json_response(
        {
            "access_token": registered.access_token,
            "user_id": registered.user_id,
            "home_server": services.server_name,
            "device_id": registered.device_id,
        }
    )


ROUTES = [
    ClientRoute("/register", get_nonce, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute("/register", register_with_shared_secret, ("POST",), auth=False, prefixes=ADMIN_V1),
]
