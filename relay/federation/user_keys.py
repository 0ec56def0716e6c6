"""Other servers asking about our users' devices and keys, and us asking them
(matrix-spec `server-server/user_keys.yaml`, `user_devices.yaml`).

Inbound:

- `POST /_matrix/federation/v1/user/keys/query`: device keys and cross-signing
  (master, self-signing) keys of local users; other servers' users are left out.
- `POST /_matrix/federation/v1/user/keys/claim`: one-time (or fallback) keys of
  local devices.
- `GET /_matrix/federation/v1/user/devices/{userId}`: a local user's whole device list
  with keys, and `stream_id`: the position of the user's last device list change, the
  same number our `m.device_list_update` EDUs carry.

Outbound, `FederationRemoteKeys` is relay/e2ee/device_lists.py's `RemoteKeys`: it answers
None for a server that failed (unreachable, or an error), so the core never handles
federation errors.

Spec: https://spec.matrix.org/v1.16/server-server-api/#end-to-end-encryption
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import trio
from starlette.requests import Request
from starlette.responses import Response

from relay.errors import InvalidParam
from relay.events.ids import server_of
from relay.federation.errors import PeerUnreachable, RemoteError
from relay.runtime.http import json_response, read_json_object
from relay.services import Services
from store import e2ee_keys as store_e2e

log = logging.getLogger(__name__)


def _services(request: Request) -> Services:
    return request.app.state.services


async def query_user_keys(request: Request, origin: str) -> Response:
    """# `POST /_matrix/federation/v1/user/keys/query`"""
    body = await read_json_object(request)
    device_keys = body.get("device_keys")
    if not isinstance(device_keys, dict) or not all(
        isinstance(d, list) for d in device_keys.values()
    ):
        raise InvalidParam("device_keys must map user ids to lists of device ids")
    result = await _services(request).e2ee_keys.query(None, device_keys, 0)
    answer = result.as_json()
    del answer["user_signing_keys"], answer["failures"]
    return json_response(answer)


async def claim_user_keys(request: Request, origin: str) -> Response:
    """# `POST /_matrix/federation/v1/user/keys/claim`"""
    body = await read_json_object(request)
    wanted = body.get("one_time_keys")
    if not isinstance(wanted, dict) or not all(isinstance(d, dict) for d in wanted.values()):
        raise InvalidParam("one_time_keys must map user ids to {device_id: algorithm}")
    answer = await _services(request).e2ee_keys.claim(wanted, 0, local_only=True)
    return json_response({"one_time_keys": answer["one_time_keys"]})


async def user_devices(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/user/devices/{userId}`"""
    services = _services(request)
    user_id = request.path_params["user_id"]
    if server_of(user_id) != services.server_name:
        raise InvalidParam(f"{user_id} is not a user of {services.server_name}")
    device_lists = services.device_lists

    def txn(conn: Any) -> dict[str, Any]:
        devices = []
        for row in store_e2e.devices_with_keys(conn, user_id):
            device: dict[str, Any] = {"device_id": row["device_id"]}
            if row["display_name"]:
                device["device_display_name"] = row["display_name"]
            if row["key_json"]:
                device["keys"] = json.loads(row["key_json"])
            devices.append(device)
        answer: dict[str, Any] = {
            "user_id": user_id,
            "stream_id": device_lists.local_stream_id(conn, user_id),
            "devices": devices,
        }
        cross = store_e2e.get_cross_signing_keys(conn, user_id)
        for key_type in ("master", "self_signing"):
            if key_type in cross:
                answer[f"{key_type}_key"] = json.loads(cross[key_type])
        return answer

    return json_response(await services.database.read(txn))


class FederationRemoteKeys:
    """Key queries to other servers; None when a server failed."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def _call(self, server: str, method: str, path: str, body: Any, timeout_s: float) -> Any:
        client = self.services.federation_client
        try:
            with trio.fail_after(max(timeout_s, 1.0)):
                if method == "GET":
                    answer = await client.get_json(server, path)
                else:
                    answer = await client.post_json(server, path, body)
        except (PeerUnreachable, RemoteError, trio.TooSlowError) as exc:
            log.info("%s %s on %s failed: %s", method, path, server, exc)
            return None
        return answer if isinstance(answer, dict) else None

    async def query(self, server: str, device_keys: Any, timeout_s: float) -> Any:
        return await self._call(
            server, "POST", "/_matrix/federation/v1/user/keys/query", device_keys, timeout_s
        )

    async def claim(self, server: str, one_time_keys: Any, timeout_s: float) -> Any:
        return await self._call(
            server, "POST", "/_matrix/federation/v1/user/keys/claim", one_time_keys, timeout_s
        )

    async def user_devices(self, server: str, user_id: str, timeout_s: float) -> Any:
        path = f"/_matrix/federation/v1/user/devices/{quote(user_id, safe='')}"
        return await self._call(server, "GET", path, None, timeout_s)
