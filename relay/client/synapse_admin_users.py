"""Synapse's user admin API: list, query, create or modify, reset a password, deactivate,
whois, joined rooms. Admins only (`synapse_admin.admin_requester`).

Shapes and errors follow element-hq/synapse `docs/admin_api/user_admin_api.md` and
`synapse/rest/admin/users.py`. What the relay has no notion of is reported as Synapse
reports a user without it: no guests, threepids, external ids, user types, locks,
suspensions, shadow bans or erasure (`is_guest: false`, `threepids: []`, ...); asking
to set one is 400 `M_INVALID_PARAM` rather than silently ignored. As in Synapse,
`creation_ts` is in seconds for one user and in milliseconds in the list.

Deactivating deletes the user's password, devices and access tokens and leaves its
rooms (`relay.operator.actions`); `erase` is refused (the relay keeps no erasure flag).
"""

from __future__ import annotations

from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response

from relay.client.auth import requester_of, services_of
from relay.client.params import bool_query, int_query
from relay.client.route import ClientRoute
from relay.client.synapse_admin import (
    ADMIN_V1,
    ADMIN_V2,
    admin_requester,
    choice_query,
    page,
    required,
)
from relay.errors import BadJson, InvalidParam, NotFound
from relay.events.ids import localpart_of, server_of
from relay.operator import actions as operator
from relay.runtime.clock import now_ms
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import Connection
from store import accounts as store_accounts
from store import rooms as store_rooms

USER_ORDERS = (
    "name",
    "displayname",
    "is_guest",
    "admin",
    "deactivated",
    "user_type",
    "avatar_url",
    "shadow_banned",
    "creation_ts",
    "last_seen_ts",
    "locked",
)
#: Fields the relay does not keep, with the value every user has.
_ABSENT = {"is_guest": False, "user_type": None, "shadow_banned": False, "locked": False}


def _list_entry(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": user["user_id"],
        "admin": user["is_admin"],
        "deactivated": user["deactivated"],
        "erased": False,
        "displayname": user["displayname"],
        "avatar_url": user["avatar_url"],
        "creation_ts": user["created_ts"],
        "last_seen_ts": user["last_seen_ts"],
        **_ABSENT,
    }


def _details_txn(conn: Connection, user_id: str) -> dict[str, Any] | None:
    user = store_accounts.get_user(conn, user_id)
    if user is None:
        return None
    seen = [d["last_seen_ts"] for d in store_accounts.list_devices(conn, user_id)]
    return {
        "name": user_id,
        "admin": user["is_admin"],
        "deactivated": user["deactivated"],
        "creation_ts": user["created_ts"] // 1000,
        "appservice_id": None,
        "consent_server_notice_sent": None,
        "consent_version": None,
        "consent_ts": None,
        "suspended": False,
        "displayname": user["displayname"],
        "avatar_url": user["avatar_url"],
        "threepids": [],
        "external_ids": [],
        "erased": False,
        "last_seen_ts": max((ts for ts in seen if ts is not None), default=None),
        **_ABSENT,
    }


def _target(request: Request, services: Services, what: str = "look up") -> str:
    user_id = request.path_params["user_id"]
    if not user_id.startswith("@") or ":" not in user_id:
        raise InvalidParam(f"Invalid user id: {user_id}")
    if server_of(user_id) != services.server_name:
        raise InvalidParam(f"Can only {what} local users")
    return user_id


async def list_users(request: Request) -> Response:
    """# `GET /_synapse/admin/v2/users`"""
    await admin_requester(request)
    services = services_of(request)
    start, limit = int_query(request, "from", 0), int_query(request, "limit", 100)
    user_id_filter = request.query_params.get("user_id")
    name_filter = request.query_params.get("name")
    bool_query(request, "guests", True)  # no guests here: nothing to filter
    include_deactivated = bool_query(request, "deactivated", False)
    admins = bool_query(request, "admins", None)
    order_by = choice_query(request, "order_by", "name", USER_ORDERS)
    direction = choice_query(request, "dir", "f", ("f", "b"))
    users = [_list_entry(u) for u in await services.database.read(store_accounts.list_users)]
    if not include_deactivated:
        users = [u for u in users if not u["deactivated"]]
    if admins is not None:
        users = [u for u in users if u["admin"] == admins]
    if name_filter:
        users = [
            u
            for u in users
            if name_filter in localpart_of(u["name"]) or name_filter in (u["displayname"] or "")
        ]
    elif user_id_filter:
        users = [u for u in users if user_id_filter in u["name"]]
    users.sort(key=lambda u: u["name"])
    if order_by != "name":  # stable: ties stay ordered by name, as Synapse does
        users.sort(key=lambda u: (u[order_by] is not None, u[order_by] or 0))
    if direction == "b":
        users.reverse()
    chunk, limit = page(users, start, limit)
    body: dict[str, Any] = {"users": chunk, "total": len(users)}
    if start + limit < len(users):
        body["next_token"] = str(start + len(chunk))
    return json_response(body)


async def get_user(request: Request) -> Response:
    """# `GET /_synapse/admin/v2/users/{user_id}`"""
    await admin_requester(request)
    services = services_of(request)
    user = await services.database.read(_details_txn, _target(request, services))
    if user is None:
        raise NotFound("User not found")
    return json_response(user)


def _check_put_body(body: dict[str, Any]) -> None:
    for name in ("admin", "deactivated", "logout_devices", "locked"):
        if name in body and not isinstance(body[name], bool):
            raise BadJson(f"Param {name!r} must be a boolean, if given")
    if body.get("locked") or body.get("user_type") is not None:
        raise InvalidParam("This server has no locked accounts or user types")
    if body.get("threepids") or body.get("external_ids"):
        raise InvalidParam("This server has no third-party or external ids")
    for name in ("displayname", "avatar_url"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 1024):
            raise InvalidParam(f"{name} must be a string")
    if body.get("password") is not None:
        operator.check_password(body["password"])


async def put_user(request: Request) -> Response:
    """# `PUT /_synapse/admin/v2/users/{user_id}`: create (201) or modify (200)."""
    requester = await admin_requester(request)
    services = services_of(request)
    user_id = _target(request, services, "use this endpoint with")
    body = await read_json_object(request)
    _check_put_body(body)
    password = body.get("password")
    password_hash = (
        None
        if password is None
        else await trio.to_thread.run_sync(store_accounts.hash_password, password)
    )
    existing = await services.database.read(store_accounts.get_user, user_id)
    if existing is None:
        operator.local_user_id(user_id, services.server_name)  # a valid new localpart
        await services.database.write(
            lambda conn: operator.create_user_txn(
                conn,
                user_id=user_id,
                password_hash=password_hash,
                admin=body.get("admin", False),
                displayname=body.get("displayname"),
                now_ms=now_ms(),
            )
        )
        if body.get("avatar_url"):
            await services.accounts.set_profile_field(user_id, "avatar_url", body["avatar_url"])
        status = 201
    else:
        await _modify(services, requester.user_id, user_id, existing, body, password_hash)
        status = 200
    return json_response(await services.database.read(_details_txn, user_id), status=status)


async def _modify(
    services: Services,
    admin_id: str,
    user_id: str,
    existing: dict[str, Any],
    body: dict[str, Any],
    password_hash: str | None,
) -> None:
    if "admin" in body and body["admin"] != existing["is_admin"]:
        if user_id == admin_id and not body["admin"]:
            raise InvalidParam("You may not demote yourself.")
        await services.database.write(store_accounts.set_admin, user_id, body["admin"])
    for name in ("displayname", "avatar_url"):
        if name in body:
            await services.database.write(
                lambda conn, name=name: store_accounts.set_profile(
                    conn, user_id, **{name: body[name] or None}
                )
            )
    if password_hash is not None:
        logged_out = await services.database.write(
            lambda conn: operator.reset_password_txn(
                conn, user_id, password_hash, logout_devices=body.get("logout_devices", True)
            )
        )
        await services.accounts.devices_deleted(user_id, logged_out)
    if body.get("deactivated") and not existing["deactivated"]:
        await operator.deactivate_user(services.accounts, services.rooms, user_id)
    elif body.get("deactivated") is False and existing["deactivated"]:
        await services.database.write(store_accounts.reactivate_user, user_id)


async def deactivate_user(request: Request) -> Response:
    """# `POST /_synapse/admin/v1/deactivate/{user_id}`"""
    await admin_requester(request)
    services = services_of(request)
    user_id = _target(request, services, "deactivate")
    if await services.database.read(store_accounts.get_user, user_id) is None:
        raise NotFound("User not found")
    body = await read_json_object(request, optional=True)
    erase = body.get("erase", False)
    if not isinstance(erase, bool):
        raise BadJson("Param 'erase' must be a boolean, if given")
    await operator.deactivate_user(services.accounts, services.rooms, user_id, erase=erase)
    # No identity server holds a binding of ours: nothing to unbind, which Synapse reports
    # as "success" (a real Synapse answers so for a user without threepids).
    return json_response({"id_server_unbind_result": "success"})


async def reset_password(request: Request) -> Response:
    """# `POST /_synapse/admin/v1/reset_password/{user_id}`"""
    await admin_requester(request)
    services = services_of(request)
    user_id = _target(request, services, "reset the password of")
    body = await read_json_object(request)
    password = required(body, "new_password")
    logout_devices = body.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise BadJson("Param 'logout_devices' must be a boolean, if given")
    await operator.reset_password(
        services.accounts, services.rooms, user_id, password, logout_devices=logout_devices
    )
    return json_response({})


async def whois(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/whois/{user_id}` and `GET /_matrix/client/v3/admin/whois/{userId}`
    (a user may ask about themself)"""
    services = services_of(request)
    requester = await requester_of(request)
    user_id = request.path_params["user_id"]
    if user_id != requester.user_id:
        await admin_requester(request)
    user_id = _target(request, services, "whois a")
    devices = await services.database.read(store_accounts.list_devices, user_id)
    connections = [
        {"ip": d["last_seen_ip"], "last_seen": d["last_seen_ts"], "user_agent": None}
        for d in devices
        if d["last_seen_ts"] is not None
    ]
    return json_response(
        {"user_id": user_id, "devices": {"": {"sessions": [{"connections": connections}]}}}
    )


async def joined_rooms(request: Request) -> Response:
    """# `GET /_synapse/admin/v1/users/{user_id}/joined_rooms`"""
    await admin_requester(request)
    services = services_of(request)
    user_id = request.path_params["user_id"]
    rooms = await services.database.read(store_rooms.rooms_for_user, user_id, "join")
    return json_response({"joined_rooms": rooms, "total": len(rooms)})


#: User ids are matched on the raw path: a localpart may hold an encoded "/".
ROUTES = [
    ClientRoute("/users", list_users, ("GET",), auth=False, prefixes=ADMIN_V2),
    ClientRoute(
        "/users/{user_id}", get_user, ("GET",), auth=False, prefixes=ADMIN_V2, raw_path=True
    ),
    ClientRoute(
        "/users/{user_id}", put_user, ("PUT",), auth=False, prefixes=ADMIN_V2, raw_path=True
    ),
    ClientRoute(
        "/deactivate/{user_id}",
        deactivate_user,
        ("POST",),
        auth=False,
        prefixes=ADMIN_V1,
        raw_path=True,
    ),
    ClientRoute(
        "/reset_password/{user_id}",
        reset_password,
        ("POST",),
        auth=False,
        prefixes=ADMIN_V1,
        raw_path=True,
    ),
    ClientRoute("/whois/{user_id}", whois, ("GET",), auth=False, prefixes=ADMIN_V1, raw_path=True),
    # The spec's own copy (client-server admin.yaml), answered the same way.
    ClientRoute("/admin/whois/{user_id}", whois, ("GET",), auth=False, raw_path=True),
    ClientRoute(
        "/users/{user_id}/joined_rooms",
        joined_rooms,
        ("GET",),
        auth=False,
        prefixes=ADMIN_V1,
        raw_path=True,
    ),
]
