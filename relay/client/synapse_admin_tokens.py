"""Synapse's registration token admin API: list, get, create, update, delete. Admins only.

Shapes and errors follow element-hq/synapse
`docs/usage/administration/admin_api/registration_tokens.md`; the rules (alphabet,
uses, expiry) are `relay.operator.actions`'s, as for `relay token`.

One difference, on purpose: the relay stores a token only as its hash (store/
registration_tokens.py), so a token read back (the list, or `GET` by the token) shows
in `token` only its start, with "…" (the CLI's `hint`); the whole token is returned
once, by `new`. Getting, updating and deleting take the whole token.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.client.auth import services_of
from relay.client.params import bool_query
from relay.client.route import ClientRoute
from relay.client.synapse_admin import ADMIN_V1, admin_requester
from relay.errors import NotFound
from relay.operator import actions as operator
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from store import registration_tokens as store_tokens


def _shown(row: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """Synapse's registration token object; `token` when the caller has it in full."""
    view = operator.token_view(row, now_ms())
    return {
        "token": token if token is not None else view["hint"],
        "uses_allowed": view["uses_allowed"],
        "pending": view["pending"],
        "completed": view["completed"],
        "expiry_time": view["expiry_time"],
    }


async def list_tokens(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/registration_tokens`"""
    await admin_requester(request)
    services = services_of(request)
    valid = bool_query(request, "valid", None)
    rows = await services.database.read(store_tokens.list_tokens)
    now = now_ms()
    if valid is not None:
        rows = [row for row in rows if operator.token_view(row, now)["valid"] == valid]
    return json_response({"registration_tokens": [_shown(row) for row in rows]})


async def new_token(request: Request) -> Response:
    """# `POST /_synapse/admin/v1/registration_tokens/new`"""
    await admin_requester(request)
    services = services_of(request)
    body = await read_json_object(request)
    if "token" in body:
        token = operator.check_token_text(body["token"])
    else:
        token = operator.random_token(body.get("length", operator.DEFAULT_TOKEN_LENGTH))
    uses_allowed = operator.check_uses_allowed(body.get("uses_allowed"))
    expiry_time = operator.check_expiry_time(body.get("expiry_time"), now_ms())
    row = await services.database.write(operator.create_token_txn, token, uses_allowed, expiry_time)
    return json_response(_shown(row, token))


async def get_token(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/registration_tokens/{token}`"""
    await admin_requester(request)
    token = request.path_params["token"]
    row = await services_of(request).database.read(store_tokens.get_token, token)
    if row is None:
        raise NotFound(f"No such registration token: {token}")
    return json_response(_shown(row, token))


async def update_token(request: Request) -> Response:
    """# `PUT /_synapse/admin/v1/registration_tokens/{token}`"""
    await admin_requester(request)
    token = request.path_params["token"]
    body = await read_json_object(request)
    changes: dict[str, Any] = {}
    if "uses_allowed" in body:
        changes["uses_allowed"] = operator.check_uses_allowed(body["uses_allowed"])
    if "expiry_time" in body:
        changes["expiry_time"] = operator.check_expiry_time(body["expiry_time"], now_ms())
    row = await services_of(request).database.write(
        lambda conn: operator.update_token_txn(conn, token, **changes)
    )
    return json_response(_shown(row, token))


async def delete_token(request: Request) -> Response:
    """# `DELETE /_synapse/admin/v1/registration_tokens/{token}`"""
    await admin_requester(request)
    token = request.path_params["token"]
    await services_of(request).database.write(operator.delete_token_txn, token)
    return json_response({})


ROUTES = [
    ClientRoute("/registration_tokens", list_tokens, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute("/registration_tokens/new", new_token, ("POST",), auth=False, prefixes=ADMIN_V1),
    ClientRoute("/registration_tokens/{token}", get_token, ("GET",), auth=False, prefixes=ADMIN_V1),
    ClientRoute(
        "/registration_tokens/{token}", update_token, ("PUT",), auth=False, prefixes=ADMIN_V1
    ),
    ClientRoute(
        "/registration_tokens/{token}", delete_token, ("DELETE",), auth=False, prefixes=ADMIN_V1
    ),
]
