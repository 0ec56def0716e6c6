"""Third-party identifiers and networks: features a kit does not offer, answered as a
Synapse answers with them switched off, so clients (Element's settings, its room
directory) show "none" instead of an error.

- 3PIDs (`/account/3pid...`): no e-mail or phone is ever attached to an account here
  (no mail or SMS leaves the box; `m.3pid_changes` is false in /capabilities). The list
  is empty; adding, deleting and asking for a token to add one are 400 `M_FORBIDDEN`
  (Synapse's `enable_3pid_changes: false`); tokens for phone numbers, for registering
  or for resetting a password by e-mail or phone are 400 with Synapse's errcodes when it
  has no e-mail or SMS set up. Unbinding finds nothing to unbind: `no-support`.
- Third-party networks (`/thirdparty/...`, bridges through application services):
  there are none. The protocol list is `{}`, a named protocol 404 `M_NOT_FOUND` (Synapse
  answers 404 with no errcode; the spec's error shape wins), and
  every lookup finds nothing (`[]`).

Spec: https://spec.matrix.org/v1.16/client-server-api/#adding-account-administrative-contact-information
(administrative_contact.yaml), #third-party-networks (third_party_lookup.yaml)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.route import ClientRoute
from relay.errors import BadJson, Forbidden, MatrixError, NotFound
from relay.runtime.http import json_response, read_json_object

DISABLED = "3PID changes are disabled on this server"


class ThreepidMediumNotSupported(MatrixError):
    status = 400
    errcode = "M_THREEPID_MEDIUM_NOT_SUPPORTED"


async def list_threepids(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/account/3pid`"""
    return json_response({"threepids": []})


async def change_refused(request: Request, requester: Requester) -> Response:
    """# `POST /account/3pid`, `/account/3pid/add`, `/account/3pid/delete`,
    `/account/3pid/email/requestToken`"""
    raise Forbidden(DISABLED, status=400)


async def token_refused(request: Request) -> Response:
    """# `POST /account/3pid/email/requestToken` (no access token needed)"""
    raise Forbidden(DISABLED, status=400)


async def phone_token_refused(request: Request) -> Response:
    """# `POST /account/3pid/msisdn/requestToken`, `/account/password/msisdn/requestToken`"""
    raise ThreepidMediumNotSupported("Phone numbers are not supported by this homeserver")


async def registration_token_refused(request: Request) -> Response:
    """# `POST /register/msisdn/requestToken`"""
    raise MatrixError(
        "Registration by phone number is not supported on this homeserver", status=400
    )


async def email_token_refused(request: Request) -> Response:
    """# `POST /register/email/requestToken`, `/account/password/email/requestToken`"""
    raise MatrixError("E-mail is not set up on this homeserver", status=400)


async def unbind(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/client/v3/account/3pid/unbind`"""
    body = await read_json_object(request)
    if body.get("medium") not in ("email", "msisdn") or not isinstance(body.get("address"), str):
        raise BadJson("medium must be email or msisdn, and address a string")
    return json_response({"id_server_unbind_result": "no-support"})


async def protocols(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/thirdparty/protocols`"""
    return json_response({})


async def protocol(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v3/thirdparty/protocol/{protocol}`"""
    raise NotFound("Unknown protocol")


async def nothing_found(request: Request, requester: Requester) -> Response:
    """# `GET /thirdparty/location[/{protocol}]`, `/thirdparty/user[/{protocol}]`"""
    return json_response([])


ROUTES = [
    ClientRoute("/account/3pid", list_threepids, ("GET",)),
    ClientRoute("/account/3pid", change_refused, ("POST",)),
    ClientRoute("/account/3pid/add", change_refused, ("POST",)),
    ClientRoute("/account/3pid/delete", change_refused, ("POST",)),
    ClientRoute("/account/3pid/email/requestToken", token_refused, ("POST",), auth=False),
    ClientRoute("/account/3pid/unbind", unbind, ("POST",)),
    ClientRoute("/account/3pid/msisdn/requestToken", phone_token_refused, ("POST",), auth=False),
    ClientRoute("/register/msisdn/requestToken", registration_token_refused, ("POST",), auth=False),
    ClientRoute(
        "/account/password/msisdn/requestToken", phone_token_refused, ("POST",), auth=False
    ),
    ClientRoute("/register/email/requestToken", email_token_refused, ("POST",), auth=False),
    ClientRoute("/account/password/email/requestToken", email_token_refused, ("POST",), auth=False),
    ClientRoute("/thirdparty/protocols", protocols, ("GET",)),
    ClientRoute("/thirdparty/protocol/{protocol}", protocol, ("GET",)),
    ClientRoute("/thirdparty/location", nothing_found, ("GET",)),
    ClientRoute("/thirdparty/location/{protocol}", nothing_found, ("GET",)),
    ClientRoute("/thirdparty/user", nothing_found, ("GET",)),
    ClientRoute("/thirdparty/user/{protocol}", nothing_found, ("GET",)),
]
