"""Uploading media (matrix-spec `client-server/content-repo.yaml`, the parts not deprecated).

- `POST /_matrix/media/v3/upload?filename=`: the body is the file, `Content-Type` its type;
  answers `{"content_uri": "mxc://..."}`.
- `POST /_matrix/media/v1/create`: reserve an mxc URI for an async upload
  (`unused_expires_at`); `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}` then gives
  its content, once, by its creator (`M_CANNOT_OVERWRITE_MEDIA`, `M_FORBIDDEN`).

Bodies are streamed to disk under `media.max_upload_bytes` (413 `M_TOO_LARGE`); a body cut
short (the client went away) stores nothing. The unauthenticated download endpoints of
this file are frozen here (the relay postdates the freeze): use the authenticated ones
(`authed_content_repo.py`).

Spec: https://spec.matrix.org/v1.16/client-server-api/#content-repository
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.route import ClientRoute
from relay.errors import BadJson, TooLarge
from relay.media.repository import IncompleteUpload, MediaRepository
from relay.runtime.http import json_response

T = TypeVar("T")
MEDIA_V3 = ("/_matrix/media/v3", "/_matrix/media/r0")
MEDIA_V1 = ("/_matrix/media/v1",)
#: After refusing a too-large body we still read (and drop) this much of it, so the
#: client, which sends before it reads, sees our 413 and not a reset connection.
DRAIN_BYTES = 8 * 1024 * 1024
DRAIN_SECONDS = 5.0


def _media(request: Request) -> MediaRepository:
    return request.app.state.services.media


def _upload_args(request: Request) -> tuple[str, str | None, int | None]:
    content_type = request.headers.get("content-type") or "application/octet-stream"
    filename = request.query_params.get("filename") or None
    length_text = request.headers.get("content-length")
    try:
        length = int(length_text) if length_text is not None else None
    except ValueError:
        raise BadJson("Content-Length is not a number") from None
    return content_type, filename, length


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    received = 0
    with trio.move_on_after(DRAIN_SECONDS):
        async for chunk in chunks:
            received += len(chunk)
            if received > DRAIN_BYTES:
                break


async def _streamed(request: Request, store: Callable[[AsyncIterator[bytes]], Awaitable[T]]) -> T:
    """Run `store` over the request body's chunks, mapping how a body can fail."""
    chunks = request.stream()
    try:
        return await store(chunks)
    except TooLarge:
        await _drain(chunks)
        raise
    except (ClientDisconnect, IncompleteUpload):
        raise BadJson("Upload incomplete: the body ended early") from None


async def upload_content(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/media/v3/upload`"""
    content_type, filename, length = _upload_args(request)
    content_uri = await _streamed(
        request,
        lambda chunks: _media(request).upload(
            requester.user_id,
            chunks,
            content_type=content_type,
            filename=filename,
            expected_length=length,
        ),
    )
    return json_response({"content_uri": content_uri})


async def create_content(request: Request, requester: Requester) -> Response:
    """# `POST /_matrix/media/v1/create`"""
    content_uri, expires = await _media(request).create(requester.user_id)
    return json_response({"content_uri": content_uri, "unused_expires_at": expires})


async def upload_content_to_mxc(request: Request, requester: Requester) -> Response:
    """# `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`"""
    content_type, filename, length = _upload_args(request)
    await _streamed(
        request,
        lambda chunks: _media(request).upload_to(
            requester.user_id,
            request.path_params["server_name"],
            request.path_params["media_id"],
            chunks,
            content_type=content_type,
            filename=filename,
            expected_length=length,
        ),
    )
    return json_response({})


ROUTES = [
    ClientRoute("/upload", upload_content, ("POST",), prefixes=MEDIA_V3),
    ClientRoute(
        "/upload/{server_name}/{media_id}", upload_content_to_mxc, ("PUT",), prefixes=MEDIA_V3
    ),
    ClientRoute("/create", create_content, ("POST",), prefixes=MEDIA_V1),
]
