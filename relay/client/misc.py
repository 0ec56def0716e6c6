"""Small discovery endpoints: capabilities, client well-known, TURN servers.

Spec: https://spec.matrix.org/v1.16/client-server-api/#capabilities-negotiation
(capabilities.yaml), #well-known-uris (wellknown.yaml), #voice-over-ip (voip.yaml).

- Capabilities state what this relay really allows: password changes, setting
  displayname and avatar_url (the only profile fields stored), no 3PID changes; room
  versions come from the event core's table.
- The well-known names the base URL the client reached us at (a relay has no
  separate public name to point at).
- No TURN server is configured: `/voip/turnServer` answers `{}`, which clients read
  as "none" (the spec allows an empty object).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import PROFILE_FIELDS, Requester
from relay.client.public_url import client_base_url
from relay.client.route import ClientRoute
from relay.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from relay.runtime.http import json_response


def capabilities() -> dict:
    return {
        "m.change_password": {"enabled": True},
        "m.room_versions": {
            "default": DEFAULT_ROOM_VERSION.identifier,
            "available": {identifier: "stable" for identifier in KNOWN_ROOM_VERSIONS},
        },
        "m.set_displayname": {"enabled": True},
        "m.set_avatar_url": {"enabled": True},
        "m.3pid_changes": {"enabled": False},
        "m.get_login_token": {"enabled": False},
        "m.profile_fields": {"enabled": True, "allowed": list(PROFILE_FIELDS)},
    }


async def get_capabilities(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/capabilities`"""
    return json_response({"capabilities": capabilities()})


async def get_wellknown(request: Request) -> Response:
    """# `GET /.well-known/matrix/client`"""
    base_url = client_base_url(request, request.app.state.services.config)
    return json_response({"m.homeserver": {"base_url": base_url}})


async def get_turn_server(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/voip/turnServer`"""
    return json_response({})


ROUTES = [
    ClientRoute("/capabilities", get_capabilities, ("GET",)),
    ClientRoute("/voip/turnServer", get_turn_server, ("GET",)),
]
