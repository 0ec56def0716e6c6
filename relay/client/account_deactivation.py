"""Deactivating one's own account: `POST /account/deactivate`.

Rules kept (https://spec.matrix.org/v1.16/client-server-api/#post_matrixclientv3accountdeactivate,
registration.yaml), Synapse where the spec is silent:

- User-interactive auth with `m.login.password` for the requester, as the other account
  operations (relay/client/uia.py); the session is bound to this operation.
- `erase` (default false) must be a boolean (400 M_BAD_JSON): an erased user's profile is
  cleared and stays so.
- The account leaves every room and rejects every invite, loses every device, access and
  OpenID token, and can't log in again (403 M_FORBIDDEN, as Synapse 1.163.2 answers); its
  user id stays taken.
  One rule for every path that deactivates: `relay.operator.actions.deactivate_user`.
- No identity server holds a binding of ours, so `id_server_unbind_result` is
  `"success"`, as Synapse answers for a user without third-party ids.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.auth import services_of
from relay.client.route import ClientRoute
from relay.client.uia import reauthenticate
from relay.errors import BadJson
from relay.operator import actions as operator
from relay.runtime.http import json_response, read_json_object


async def deactivate_account(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/account/deactivate`"""
    services = services_of(request)
    body = await read_json_object(request)
    erase = body.get("erase", False)
    if not isinstance(erase, bool):
        raise BadJson("Param 'erase' must be a boolean, if given")
    session = await reauthenticate(
        services, requester.user_id, body.get("auth"), "deactivate_account"
    )
    await operator.deactivate_user(
        services.accounts, services.rooms, requester.user_id, erase=erase
    )
    services.uia_account.finish(session)
    return json_response({"id_server_unbind_result": "success"})


ROUTES = [ClientRoute("/account/deactivate", deactivate_account, ("POST",))]
