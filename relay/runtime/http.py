"""The HTTP edge shared by both listeners: the ASGI app factory, JSON in and out.

Errors are mapped here and only here: a `MatrixError` becomes its JSON; the
router's 404/405 become `M_UNRECOGNIZED`; a client that hangs up before its body
ended is an INFO line (phones on bad Wi-Fi do, all the time); anything else is a 500
`M_UNKNOWN` with the traceback logged (the client learns nothing of our internals).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.errors import BadJson, MatrixError, NotJson, TooLarge, Unknown, Unrecognized
from relay.events.canonical import JsonParseError, parse_json_strict

log = logging.getLogger(__name__)

MAX_REQUEST_BODY = 2 * 1024 * 1024
#: How much of a request body nobody read we still read (and drop) before answering;
#: see DrainUnreadBody.
DRAIN_BYTES = 32 * 1024 * 1024
DRAIN_SECONDS = 5.0
#: Client bodies nested deeper than this are refused: no client needs it, and the
#: recursive code behind (copying, hashing, the parser itself) hits Python's recursion
#: limit near 450. Federation requests are left alone (a peer's transaction is not
#: refused whole for one deep event).
MAX_JSON_DEPTH = 100
SERVER_PATHS = ("/_matrix/federation/", "/_matrix/key/")


class MatrixJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(body: Any, status: int = 200) -> Response:
    return MatrixJSONResponse(body, status_code=status)


async def _matrix_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MatrixError)
    return json_response(exc.to_json(), exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: MatrixError = Unrecognized("Unrecognized request")
    elif exc.status_code == 405:
        err = Unrecognized("Unrecognized request: method not allowed", status=405)
    else:
        err = MatrixError(str(exc.detail), status=exc.status_code)
    return json_response(err.to_json(), err.status)


async def _client_gone(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientDisconnect)
    log.info("client hung up before its body ended: %s %s", request.method, request.url.path)
    # Nobody reads this answer; it only ends the exchange cleanly.
    err = BadJson("Request body incomplete: the client hung up")
    return json_response(err.to_json(), err.status)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    err = Unknown("Internal server error")
    return json_response(err.to_json(), err.status)


class DrainUnreadBody:
    """Reads (and drops) what the handler left of the request body before the response
    starts. An answer given before the body is read (401 for a missing token, 404, 413
    for a body too large, 429) otherwise ends the connection with no `Connection: close`:
    a client reusing it sees "server disconnected", one still sending a big body sees a
    reset instead of the answer. Bounded by DRAIN_BYTES and DRAIN_SECONDS.

    Only a request that has a body is watched (`_has_body`): a GET's one message is the
    empty end of the body, and there is nothing to drain. Nor does the drain read beside
    the app: a streaming or file response listens for `http.disconnect` with its own
    `receive` while it sends, and two readers of one channel race for its messages (the
    drain waited its full DRAIN_SECONDS whenever the listener took the end of the body).
    See `_RequestBody`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        body = _RequestBody(receive)

        async def draining_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not await body.drain():
                log.warning(
                    "gave up draining the unread body of %s %s after %.0f s",
                    scope["method"],
                    scope["path"],
                    DRAIN_SECONDS,
                )
            await send(message)

        await self.app(scope, body.receive, draining_send)


def _has_body(scope: Scope) -> bool:
    """Whether the request announced a body (HTTP/1.1: Content-Length above 0, or a
    Transfer-Encoding). One without gets no message but the empty end of the body."""
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


class _RequestBody:
    """The request's `receive`, shared by the app and the drain so that they never wait
    on it side by side.

    The app's calls go through `receive`. The drain (`drain`, when the response starts)
    reads only while the app is not reading: if the app already waits in `receive` (a
    response's disconnect listener), the rest of the body reaches the app, and the drain
    only waits for the end of the body to go by. If the app starts reading while the
    drain waits, whichever of them gets the end of the body ends the drain. A message
    that is not the body (`http.disconnect`) read by the drain is kept for the app."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._ended = trio.Event()
        self._app_waiting = 0
        self._kept: Message | None = None
        self._drain_scope: trio.CancelScope | None = None

    async def receive(self) -> Message:
        if self._kept is not None:
            message, self._kept = self._kept, None
            return message
        self._app_waiting += 1
        try:
            message = await self._receive()
        finally:
            self._app_waiting -= 1
        self._saw(message)
        return message

    def _saw(self, message: Message) -> None:
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._ended.set()
            if self._drain_scope is not None:
                self._drain_scope.cancel()

    async def drain(self) -> bool:
        """Wait until the whole body went by, reading and dropping it if nobody else
        reads it; False if DRAIN_SECONDS or DRAIN_BYTES ran out first."""
        drained = 0
        with trio.move_on_after(DRAIN_SECONDS):
            while not self._ended.is_set() and drained <= DRAIN_BYTES:
                if self._app_waiting:
                    await self._ended.wait()
                    break
                with trio.CancelScope() as self._drain_scope:
                    message = await self._receive()
                    self._saw(message)
                    if message["type"] == "http.request":
                        drained += len(message.get("body", b""))
                    else:
                        self._kept = message
                self._drain_scope = None
        return self._ended.is_set()


class RawPathRoute(Route):
    """A route matched on the raw path, before percent-decoding, as Synapse matches
    its routes: an encoded `/` (`%2F`) stays inside its segment (a media file name
    `mc%2Fdl%2Fimg.enc` is one segment, not three). Parameters are decoded after the
    match."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw is None:
            return super().matches(scope)
        path = raw.split(b"?", 1)[0].decode("latin-1")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match, child = super().matches({**scope, "path": path, "root_path": ""})
        if match is not Match.NONE:
            params = child["path_params"]
            child["path_params"] = {
                key: unquote(value) if isinstance(value, str) else value
                for key, value in params.items()
            }
        return match, child


def make_app(routes: Sequence[BaseRoute]) -> Starlette:
    return Starlette(
        routes=list(routes),
        exception_handlers={
            MatrixError: _matrix_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _internal_error,
        },
        middleware=[
            Middleware(DrainUnreadBody),
            # Web clients (Element) call from another origin; the spec asks for these.
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                allow_headers=["X-Requested-With", "Content-Type", "Authorization"],
            ),
        ],
    )


async def read_json_body(
    request: Request, *, max_bytes: int = MAX_REQUEST_BODY, empty: Any = None
) -> Any:
    """The request body as JSON (`parse_json_body`), or M_NOT_JSON / M_TOO_LARGE. An empty body is
    `empty` when one is given (endpoints whose body is optional), else M_NOT_JSON."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge("Request body too large")
        chunks.append(chunk)
    body = b"".join(chunks)
    if empty is not None and not body.strip():
        return empty
    value = parse_json_body(body)
    if not request.url.path.startswith(SERVER_PATHS) and _depth_exceeds(value, MAX_JSON_DEPTH):
        raise BadJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def parse_json_body(body: bytes) -> Any:
    """A request body as JSON, through the one strict parser (`parse_json_strict`:
    no BOM, duplicate keys, NaN/Infinity or bad UTF-8), or 400 M_NOT_JSON, as Synapse
    answers any body its parser refuses (one nested past the recursion limit too)."""
    try:
        return parse_json_strict(body)
    except JsonParseError:
        raise NotJson("Content not JSON.") from None


async def read_json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; with `optional`, an empty body is `{}`."""
    body = await read_json_body(request, empty={} if optional else None)
    if not isinstance(body, dict):
        raise BadJson("Content must be a JSON object.")
    return body
