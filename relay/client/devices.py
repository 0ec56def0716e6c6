"""Device management: list, read, rename and delete the requester's devices.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#device-management,
device_management.yaml):

- Only the requester's own devices are visible; an unknown device is M_NOT_FOUND.
- Deleting devices needs user-interactive auth (`m.login.password` for the requester);
  a UIA session authorises deleting exactly the devices it was started for.
- Deleting a device deletes its access tokens (the store's rule), so its clients are
  logged out; deleting unknown device ids is not an error.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.client.uia import reauthenticate
from relay.errors import BadJson, InvalidParam
from relay.runtime.http import json_response, read_json_body, read_json_object
from relay.services import Services


def _device_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "device_id": row["device_id"],
        "display_name": row["display_name"],
        "last_seen_ip": row["last_seen_ip"],
        "last_seen_ts": row["last_seen_ts"],
    }


async def _authenticate_deletion(
    services: Services, requester: Requester, auth: Any, device_ids: list[str]
) -> None:
    session = await reauthenticate(
        services, requester.user_id, auth, "delete_devices:" + json.dumps(sorted(device_ids))
    )
    await services.accounts.delete_devices(requester.user_id, device_ids)
    services.uia_account.finish(session)


async def get_devices(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/devices`"""
    rows = await services_of(request).accounts.devices(requester.user_id)
    return json_response({"devices": [_device_json(row) for row in rows]})


async def get_device(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/devices/{deviceId}`"""
    device_id = request.path_params["device_id"]
    row = await services_of(request).accounts.device(requester.user_id, device_id)
    return json_response(_device_json(row))


async def update_device(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/client/v3/devices/{deviceId}`"""
    body = await read_json_object(request)
    display_name = body.get("display_name")
    if display_name is not None and not isinstance(display_name, str):
        raise InvalidParam("display_name must be a string")
    device_id = request.path_params["device_id"]
    await services_of(request).accounts.rename_device(requester.user_id, device_id, display_name)
    return json_response({})


async def delete_device(request: Request, requester: Requester) -> Response:
    """# `DELETE /_matrix/client/v3/devices/{deviceId}`"""
    # The body is optional on DELETE; an empty one means "no auth yet".
    body = await read_json_body(request, empty={})
    if not isinstance(body, dict):
        raise BadJson("Content must be a JSON object.")
    device_id = request.path_params["device_id"]
    await _authenticate_deletion(services_of(request), requester, body.get("auth"), [device_id])
    return json_response({})


async def delete_devices(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/delete_devices`"""
    body = await read_json_object(request)
    device_ids = body.get("devices")
    if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
        raise BadJson("devices must be a list of device ids")
    await _authenticate_deletion(services_of(request), requester, body.get("auth"), device_ids)
    return json_response({})


ROUTES = [
    ClientRoute("/devices", get_devices, ("GET",)),
    ClientRoute("/devices/{device_id}", get_device, ("GET",)),
    ClientRoute("/devices/{device_id}", update_device, ("PUT",)),
    ClientRoute("/devices/{device_id}", delete_device, ("DELETE",)),
    ClientRoute("/delete_devices", delete_devices, ("POST",)),
]
