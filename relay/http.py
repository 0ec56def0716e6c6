"""The HTTP edge shared by both listeners: the ASGI app factory, JSON in and out.

Errors are mapped here and only here: a `MatrixError` becomes its JSON; the
router's 404/405 become `M_UNRECOGNIZED`; anything else is a 500 `M_UNKNOWN`
with the traceback logged (the client learns nothing of our internals).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from relay.errors import BadJson, MatrixError, NotJson, TooLarge, Unknown, Unrecognized

log = logging.getLogger(__name__)

MAX_REQUEST_BODY = 2 * 1024 * 1024


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


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    err = Unknown("Internal server error")
    return json_response(err.to_json(), err.status)


def make_app(routes: Sequence[BaseRoute]) -> Starlette:
    return Starlette(
        routes=list(routes),
        exception_handlers={
            MatrixError: _matrix_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        middleware=[
            # Web clients (Element) call from another origin; the spec asks for these.
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                allow_headers=["X-Requested-With", "Content-Type", "Authorization"],
            )
        ],
    )


async def read_json_body(
    request: Request, *, max_bytes: int = MAX_REQUEST_BODY, empty: Any = None
) -> Any:
    """The request body as JSON, or M_NOT_JSON / M_TOO_LARGE. An empty body is
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
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise NotJson("Content not JSON.") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; with `optional`, an empty body is `{}`."""
    body = await read_json_body(request, empty={} if optional else None)
    if not isinstance(body, dict):
        raise BadJson("Content must be a JSON object.")
    return body
