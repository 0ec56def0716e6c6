"""`GET /_matrix/client/versions` and the listener's health check.

Spec: https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientversions
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from relay.runtime.http import json_response

SUPPORTED_VERSIONS = [
    "r0.6.1",
    "v1.1",
    "v1.2",
    "v1.3",
    "v1.4",
    "v1.5",
    "v1.6",
    "v1.7",
    "v1.8",
    "v1.9",
    "v1.10",
    "v1.11",
]

#: MSC4186 Simplified Sliding Sync (relay/client/sliding_sync.py), the name Synapse
#: advertises and Element X looks for.
UNSTABLE_FEATURES = {"org.matrix.simplified_msc3575": True}


async def get_versions(request: Request) -> Response:
    """# `GET /_matrix/client/versions`"""
    return json_response({"versions": SUPPORTED_VERSIONS, "unstable_features": UNSTABLE_FEATURES})


async def health(request: Request) -> Response:
    """# `GET /health`: 200 "OK" while the relay serves."""
    return PlainTextResponse("OK")
