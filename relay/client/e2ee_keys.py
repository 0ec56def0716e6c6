"""End-to-end encryption keys: `/keys/upload`, `/keys/query`, `/keys/claim`,
`/keys/changes` (matrix-spec `client-server/keys.yaml`) and cross-signing
`/keys/device_signing/upload`, `/keys/signatures/upload` (`cross_signing.yaml`).

The rules live in relay/e2ee/device_keys.py; here requests are parsed and answers shaped.
Changing cross-signing keys once a master key exists needs UIA with `m.login.password`.

Spec: https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.client.tokens import parse_token
from relay.client.uia import reauthenticate
from relay.e2ee.device_keys import DEFAULT_QUERY_TIMEOUT_S
from relay.errors import InvalidParam, MissingParam
from relay.runtime.http import json_response, read_json_object


def _timeout_s(body: dict[str, Any]) -> float:
    timeout = body.get("timeout", int(DEFAULT_QUERY_TIMEOUT_S * 1000))
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise InvalidParam("timeout must be a non-negative integer")
    return min(timeout, 60_000) / 1000


def _user_map(body: dict[str, Any], name: str, value_type: type) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise InvalidParam(f"{name} must be an object")
    for user_id, inner in value.items():
        if not user_id.startswith("@") or not isinstance(inner, value_type):
            raise InvalidParam(f"{name} must map user ids to {value_type.__name__}s")
    return value


async def upload_keys(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/keys/upload`"""
    body = await read_json_object(request)
    e2e = services_of(request).e2ee_keys
    counts = await e2e.upload(requester.user_id, requester.device_id, body)
    return json_response({"one_time_key_counts": counts})


async def query_keys(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/keys/query`"""
    body = await read_json_object(request)
    device_keys = _user_map(body, "device_keys", list)
    if not all(isinstance(d, str) for devices in device_keys.values() for d in devices):
        raise InvalidParam("device ids must be strings")
    e2e = services_of(request).e2ee_keys
    result = await e2e.query(requester.user_id, device_keys, _timeout_s(body))
    return json_response(result.as_json())


async def claim_keys(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/keys/claim`"""
    body = await read_json_object(request)
    wanted = _user_map(body, "one_time_keys", dict)
    if not all(isinstance(a, str) for devices in wanted.values() for a in devices.values()):
        raise InvalidParam("one_time_keys must map device ids to algorithms")
    e2e = services_of(request).e2ee_keys
    return json_response(await e2e.claim(wanted, _timeout_s(body)))


async def get_keys_changes(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/keys/changes`"""
    query = request.query_params
    if "from" not in query or "to" not in query:
        raise MissingParam("from and to are required")
    since = parse_token(query["from"], "from token").stream
    to = parse_token(query["to"], "to token").stream
    device_lists = services_of(request).device_lists
    changed, left = await services_of(request).database.read(
        device_lists.changes_txn, requester.user_id, since, to
    )
    return json_response({"changed": changed, "left": left})


async def upload_cross_signing_keys(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/keys/device_signing/upload`"""
    body = await read_json_object(request)
    services = services_of(request)
    e2e = services.e2ee_keys
    session = None
    changes, needs_uia = await e2e.cross_signing_change(requester.user_id, body)
    if not changes:
        return json_response({})
    if needs_uia:
        session = await reauthenticate(
            services, requester.user_id, body.get("auth"), "device_signing_upload"
        )
    await e2e.upload_cross_signing(requester.user_id, body)
    if session is not None:
        services.uia_account.finish(session)
    return json_response({})


async def upload_cross_signing_signatures(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/keys/signatures/upload`"""
    body = await read_json_object(request)
    e2e = services_of(request).e2ee_keys
    return json_response(await e2e.upload_signatures(requester.user_id, body))


ROUTES = [
    ClientRoute("/keys/upload", upload_keys, ("POST",)),
    ClientRoute("/keys/upload/{device_id}", upload_keys, ("POST",)),
    ClientRoute("/keys/query", query_keys, ("POST",)),
    ClientRoute("/keys/claim", claim_keys, ("POST",)),
    ClientRoute("/keys/changes", get_keys_changes, ("GET",)),
    ClientRoute("/keys/device_signing/upload", upload_cross_signing_keys, ("POST",)),
    ClientRoute("/keys/signatures/upload", upload_cross_signing_signatures, ("POST",)),
]
