"""Synapse's admin API, the parts operators' tools (synadm, scripts) use: this module has
what the others share (admin-only access, query parameters, `server_version`) and the
shared-secret registration, `/_synapse/admin/v1/register` (`register_new_matrix_user`,
test harnesses). Users are in `synapse_admin_users`, rooms in `synapse_admin_rooms`,
registration tokens in `synapse_admin_tokens`; each action calls `relay.operator.actions`, as
the CLI and the operator page do.

Every endpoint but `register` and `server_version` (public in Synapse too) needs the
access token of a server admin (`relay user add --admin`): anyone else gets 403
`M_FORBIDDEN` "You are not a server admin", as Synapse's `assert_user_is_admin`.
Docs: element-hq/synapse `docs/admin_api/`.

Shared-secret registration:
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

import relay
from relay.accounts import Requester, valid_new_localpart
from relay.client.auth import requester_of, services_of
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden, InvalidParam, MissingParam, Unknown
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import accounts as store_accounts

NONCE_TIMEOUT_S = 60
MAX_NONCES = 10_000
ADMIN_V1 = ("/_synapse/admin/v1",)
ADMIN_V2 = ("/_synapse/admin/v2",)
#: The longest page an admin list returns, whatever `limit` asks (bounds the work).
MAX_PAGE = 1000


async def admin_requester(request: Request) -> Requester:
    """The requester, who must be a server admin (403 M_FORBIDDEN otherwise)."""
    requester = await requester_of(request)
    services = services_of(request)
    user = await services.database.read(store_accounts.get_user, requester.user_id)
    if user is None or not user["is_admin"] or user["deactivated"]:
        raise Forbidden("You are not a server admin")
    return requester


def choice_query(request: Request, name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = request.query_params.get(name, default)
    if raw not in allowed:
        raise InvalidParam(
            f"Query parameter {name!r} must be one of [{', '.join(map(repr, allowed))}]"
        )
    return raw


def page(items: list, start: int, limit: int) -> tuple[list, int]:
    """`items[start:start+limit]` with `limit` capped at MAX_PAGE; (page, limit used)."""
    limit = min(limit, MAX_PAGE)
    return items[start : start + limit], limit


def required(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise MissingParam(f"Missing params: [{name!r}]")
    return body[name]


async def get_server_version(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/server_version`"""
    return json_response({"server_version": f"edge-relay {relay.__version__}"})


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
    return json_response({"nonce": services.shared_secret_nonces.issue()})


async def register_with_shared_secret(request: Request) -> Response:
    """# `POST /_synapse/admin/v1/register`"""
    services = services_of(request)
    secret = _secret(services)
    body = await read_json_object(request)
    nonce = body.get("nonce")
    if not isinstance(nonce, str):
        raise BadJson("nonce must be specified")
    if not services.shared_secret_nonces.take(nonce):
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
    ClientRoute("/server_version", get_server_version, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute("/register", get_nonce, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute("/register", register_with_shared_secret, ("POST",), auth=False, prefixes=ADMIN_V1),
]
