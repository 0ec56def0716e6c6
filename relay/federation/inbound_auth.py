"""Who is calling: the X-Matrix signature of an inbound federation request, and the route
wrapper that requires one (the federation twin of `relay/client/auth.py`).

The signed `uri` is rebuilt from the ASGI scope's `raw_path` and `query_string`, the bytes
the peer sent, never from the decoded path. A body is read once (bounded by
`MAX_REQUEST_BODY`; inflated first, within the same bound, when a relay sent it gzipped:
content_coding.py), parsed as JSON for the signature's `content`, and replayed to the
handler, which reads it as usual. Any failure is 401 `M_UNAUTHORIZED` (400 for a header
that does not parse; `M_NOT_JSON` for a body that is not JSON).

An origin `mesh.policy` refuses (relay/federation/peer_policy.py) is answered 403
`M_FORBIDDEN` before its signature is checked: checking it may fetch the origin's key,
which would be a request to a server we must send nothing to.

When the request is refused or its signature does not verify, the mesh's gate
(`mesh_inbound_gate`) is told, with the signed object: it may mark an unapproved LAN peer
that really tried to federate as rejected, and must change nothing for a forgery.

Spec: https://spec.matrix.org/v1.16/server-server-api/#request-authentication
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Message

from relay.errors import Forbidden, TooLarge, Unauthorized
from relay.events.signing import SignatureError
from relay.federation import content_coding
from relay.federation.request_auth import signed_request_from_headers
from relay.runtime.http import MAX_REQUEST_BODY, parse_json_body
from relay.services import Services

OriginHandler = Callable[[Request, str], Awaitable[Response]]
Handler = Callable[[Request], Awaitable[Response]]


def services_of(request: HTTPConnection) -> Services:
    return request.app.state.services


def requester_address(request: HTTPConnection) -> str:
    """The address a request came from: what the key fetches it causes are charged to."""
    return request.client.host if request.client is not None else ""


def request_uri(request: HTTPConnection) -> str:
    """The request target as sent: raw path plus `?query` when there is one."""
    raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
    query: bytes = request.scope.get("query_string") or b""
    if b"?" not in raw_path and query:
        raw_path += b"?" + query
    return raw_path.decode("utf-8", "replace")


async def _read_body(request: Request) -> bytes:
    """The body, plain (a relay may send it gzipped: content_coding.py); bounded."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BODY:
            raise TooLarge("Request body too large")
        chunks.append(chunk)
    coding = request.headers.get("content-encoding", "")
    return content_coding.decode(b"".join(chunks), coding, MAX_REQUEST_BODY)


def _replaying(request: Request, body: bytes) -> Request:
    """A request whose body stream yields `body` (already read) to the handler."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return Request(request.scope, receive)


async def authenticate_request(request: HTTPConnection, body: bytes) -> str:
    """The server that signed this request (with `body`, already read); a WebSocket's is
    its upgrade request, a `GET` without a body.

    Raises:
        Unauthorized: no, malformed, misdirected or unverifiable X-Matrix signature.
        NotJson: a body that is not JSON.
    """
    services = services_of(request)
    has_content = bool(body)
    content = parse_json_body(body) if has_content else None
    origin, signed = signed_request_from_headers(
        request.headers.getlist("authorization"),
        method=request.scope.get("method", "GET"),
        uri=request_uri(request),
        our_server_name=services.server_name,
        content=content,
        has_content=has_content,
    )
    gate = services.mesh_inbound_gate
    if not await services.peer_policy.allows(origin):
        if gate is not None:
            await gate(origin, signed)
        raise Forbidden(f"{origin} is not a server this relay federates with")
    try:
        await services.keyring.verify_json_for_server(
            signed, origin, requester=requester_address(request)
        )
    except SignatureError as exc:
        if gate is not None:
            await gate(origin, signed)
        raise Unauthorized(f"Invalid signature from {origin}: {exc}") from None
    client = getattr(services, "federation_client", None)
    if client is not None:
        client.heard_from(origin)  # a live peer: our probes to it can wait (sender.py)
    return origin


def with_origin(handler: OriginHandler) -> Handler:
    """Wrap a federation handler that needs a signed request; it receives the origin."""

    async def endpoint(request: Request) -> Response:
        body = await _read_body(request)
        origin = await authenticate_request(request, body)
        return await handler(_replaying(request, body), origin)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
