"""The notary key query: other servers' keys as we know them, with our signature added.

`GET /_matrix/key/v2/query/{serverName}` and `POST /_matrix/key/v2/query` answer for the
servers we know: ourselves, and every server whose signed key response we keep (fetched
from it, or through a notary). Each response is the original JSON, its signatures intact,
with ours added. A server we cannot answer for is left out (an empty list is a valid answer).
These routes are unauthenticated, as Synapse serves them, so a server that cannot reach a
kit can still learn the kit's key through a relay that carried its events (INTEROP.md).

Spec: https://spec.matrix.org/v1.16/server-server-api/#querying-keys-through-another-server
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import BadJson, InvalidParam
from relay.events.ids import is_valid_server_name
from relay.federation.inbound_auth import requester_address
from relay.runtime.http import json_response, read_json_object
from relay.services import Services

#: A POST asking about more servers than this is refused.
MAX_SERVERS_PER_QUERY = 100


def _services(request: Request) -> Services:
    return request.app.state.services


def _minimum(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParam(f"{where} must be an integer")
    return value


async def perspectives_key_query(request: Request) -> Response:
    """# `GET /_matrix/key/v2/query/{serverName}`"""
    server_name = request.path_params["server_name"]
    if not is_valid_server_name(server_name):
        raise InvalidParam(f"{server_name!r} is not a server name")
    text = request.query_params.get("minimum_valid_until_ts")
    if text is not None and not text.lstrip("-").isdigit():
        raise InvalidParam("minimum_valid_until_ts must be an integer")
    minimum = int(text) if text is not None else None
    responses = await _services(request).keyring.notary_responses(
        {server_name: {}}, minimum_valid_until_ts=minimum, requester=requester_address(request)
    )
    return json_response({"server_keys": responses})


async def bulk_perspectives_key_query(request: Request) -> Response:
    """# `POST /_matrix/key/v2/query`"""
    body = await read_json_object(request)
    query = body.get("server_keys")
    if not isinstance(query, dict):
        raise BadJson("server_keys must be an object")
    if len(query) > MAX_SERVERS_PER_QUERY:
        raise InvalidParam(f"at most {MAX_SERVERS_PER_QUERY} servers per query")
    criteria: dict[str, dict[str, int | None]] = {}
    for server_name, keys in query.items():
        if not is_valid_server_name(server_name) or not isinstance(keys, dict):
            raise BadJson(f"bad query for {server_name!r}")
        criteria[server_name] = {}
        for key_id, criterion in keys.items():
            if not isinstance(criterion, dict):
                raise BadJson(f"bad query criteria for {server_name} {key_id}")
            criteria[server_name][key_id] = _minimum(
                criterion.get("minimum_valid_until_ts"), "minimum_valid_until_ts"
            )
    responses = await _services(request).keyring.notary_responses(
        criteria, requester=requester_address(request)
    )
    return json_response({"server_keys": responses})
