"""The client listener's route table: every path, method, handler and whether it
needs an access token, in one place.

Each API module exports `ROUTES: list[ClientRoute]` with paths relative to
`/_matrix/client/{version}`; they are mounted under `v3` (and `r0` where the
path existed then, for older clients) here.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.client import (
    account_data,
    account_deactivation,
    authed_content_repo,
    content_repo,
    create_room,
    devices,
    directory,
    e2ee_keys,
    filters,
    hierarchy,
    key_backup,
    login,
    membership,
    message_pagination,
    misc,
    notifications,
    openid,
    password,
    presence,
    profile,
    push_rules,
    pushers,
    receipts,
    registration,
    relations,
    reports,
    room_event_by_timestamp,
    room_send,
    room_upgrades,
    rooms_read,
    search,
    sliding_sync,
    synapse_admin,
    synapse_admin_reports,
    synapse_admin_rooms,
    synapse_admin_tokens,
    synapse_admin_users,
    sync,
    tags,
    third_party,
    to_device,
    user_directory,
    versions,
)
from relay.client import typing as typing_api
from relay.client.auth import Handler, with_requester
from relay.client.params import check_path_params
from relay.client.route import ClientRoute
from relay.runtime.http import RawPathRoute, make_app
from relay.services import Services
from relay.web import admin_page
from relay.web.chat_client import ChatClient

# `/sync` first: every client polls it, and Starlette tries the routes in order (it
# was the 143rd of 228). No other route matches its path
# (tests/client/test_routes_order.py), so the order changes nothing else.
API_MODULES = [
    sync,
    login,
    create_room,
    membership,
    room_send,
    registration,
    synapse_admin,
    synapse_admin_users,
    synapse_admin_rooms,
    synapse_admin_tokens,
    synapse_admin_reports,
    password,
    account_deactivation,
    devices,
    profile,
    openid,
    push_rules,
    pushers,
    notifications,
    misc,
    message_pagination,
    room_event_by_timestamp,
    room_upgrades,
    rooms_read,
    relations,
    directory,
    hierarchy,
    user_directory,
    third_party,
    reports,
    search,
]

# The sync side: /sync, filters, typing, receipts, account data, presence.
API_MODULES += [sliding_sync, filters, typing_api, receipts, account_data, tags, presence]

# Media: uploads under /_matrix/media, downloads under /_matrix/client/v1/media.
API_MODULES += [content_repo, authed_content_repo]

# End-to-end encryption: keys, to-device messages, key backup.
API_MODULES += [e2ee_keys, to_device, key_backup]


def _api_routes() -> list[ClientRoute]:
    return [route for module in API_MODULES for route in module.ROUTES]


BASE_ROUTES = [
    Route("/health", versions.health, methods=["GET"]),
    Route("/_matrix/client/versions", versions.get_versions, methods=["GET"]),
    Route("/.well-known/matrix/client", misc.get_wellknown, methods=["GET"]),
]


class RestConvertor(PathConvertor):
    """`{name:rest}`: the rest of the path, "/" and line breaks included (Starlette's
    `path` stops at a newline, and a state key with one was a 404, not the 400
    `check_path_params` gives)."""

    regex = "[\\s\\S]*"


register_url_convertor("rest", RestConvertor())


def build_routes(api_routes: list[ClientRoute]) -> list[Route]:
    routes = list(BASE_ROUTES)
    for r in api_routes:
        endpoint = _checking_path_params(with_requester(r.handler) if r.auth else r.handler)
        for prefix in r.prefixes:
            route_class = RawPathRoute if r.raw_path else Route
            routes.append(route_class(prefix + r.path, endpoint, methods=list(r.methods)))
    return routes


def _checking_path_params(handler: Handler) -> Handler:
    """The route's handler, called only for path parameters `check_path_params` takes."""

    async def endpoint(request: Request) -> Response:
        check_path_params(request.path_params)
        return await handler(request)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def client_app(services: Services) -> Starlette:
    """The client listener: the API, the operator page at `/_relay/admin/`, then the chat
    client's files at `/` (relay.web)."""
    app = make_app(build_routes(_api_routes()) + admin_page.routes() + ChatClient().routes())
    app.state.services = services
    return app
