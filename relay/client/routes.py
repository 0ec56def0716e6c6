"""The client listener's route table: every path, method and handler in one place."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from relay.client import versions
from relay.http import make_app
from relay.services import Services

ROUTES = [
    Route("/health", versions.health, methods=["GET"]),
    Route("/_matrix/client/versions", versions.get_versions, methods=["GET"]),
]


def client_app(services: Services) -> Starlette:
    app = make_app(ROUTES)
    app.state.services = services
    return app
