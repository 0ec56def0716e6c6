"""Who is calling: the access token of a client request, and the route wrapper that
requires one.

Spec: https://spec.matrix.org/v1.16/client-server-api/#using-access-tokens
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.errors import MissingToken
from relay.services import Services

AuthedHandler = Callable[[Request, Requester], Awaitable[Any]]
Handler = Callable[[Request], Awaitable[Any]]


def access_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.query_params.get("access_token") or None


def services_of(request: Request) -> Services:
    return request.app.state.services


async def requester_of(request: Request) -> Requester:
    token = access_token(request)
    if token is None:
        raise MissingToken("Missing access token")
    return await services_of(request).accounts.authenticate(token)


def with_requester(handler: AuthedHandler) -> Handler:
    """Wrap a handler that needs an authenticated user; it receives the Requester."""

    async def endpoint(request: Request) -> Response:
        requester = await requester_of(request)
        return await handler(request, requester)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
