"""`GET /_matrix/federation/v1/version` and `GET /_matrix/key/v2/server`.

`GET /_matrix/key/v2/server/{keyId}` gets the same answer: that path left the spec in
v1.6, but peers and test suites still use it, and Synapse answers it with all its keys,
ignoring the id.

The version answer also announces the request codings we accept (content_coding.py) and
the transaction stream between relays (transaction_stream.py).

Spec: https://spec.matrix.org/v1.16/server-server-api/#get_matrixfederationv1version
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

import relay
from relay.federation import content_coding, transaction_stream
from relay.runtime.http import json_response


async def get_version(request: Request) -> Response:
    """# `GET /_matrix/federation/v1/version`"""
    server = {"name": "edge-relay", "version": relay.__version__}
    return json_response(
        {"server": server} | content_coding.announcement() | transaction_stream.announcement()
    )


async def get_server_keys(request: Request) -> Response:
    """# `GET /_matrix/key/v2/server` (and the deprecated `.../server/{keyId}`)"""
    return json_response(request.app.state.services.own_keys.server_keys())


async def health(request: Request) -> Response:
    """# `GET /health` on the federation listener (LAN peers probe it for liveness)."""
    return PlainTextResponse("OK")
