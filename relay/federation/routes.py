"""The federation listener's route table."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from relay.federation import notary, query, version
from relay.federation.inbound_auth import with_origin
from relay.http import make_app
from relay.services import Services

ROUTES = [
    Route("/health", version.health, methods=["GET"]),
    Route("/_matrix/federation/v1/version", version.get_version, methods=["GET"]),
    Route("/_matrix/key/v2/server", version.get_server_keys, methods=["GET"]),
    Route("/_matrix/key/v2/query/{server_name}", notary.perspectives_key_query, methods=["GET"]),
    Route("/_matrix/key/v2/query", notary.bulk_perspectives_key_query, methods=["POST"]),
    # Signed requests (X-Matrix): the handler receives the origin.
    Route(
        "/_matrix/federation/v1/query/profile", with_origin(query.query_profile), methods=["GET"]
    ),
]


def federation_app(services: Services) -> Starlette:
    app = make_app(ROUTES)
    app.state.services = services
    return app
