"""Our media, served to other servers (matrix-spec `server-server/content_repository.yaml`).

- `GET /_matrix/federation/v1/media/download/{mediaId}`: our upload as `multipart/mixed`
  (`{}`, then the file). Only media uploaded here: we never re-serve another server's.
- `GET /_matrix/federation/v1/media/thumbnail/{mediaId}?width&height&method`: a thumbnail
  of it, the same way.

Both wait up to `timeout_ms` for an async upload still in progress (504 after).

Spec: https://spec.matrix.org/v1.16/server-server-api/#content-repository
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.media.repository import MediaRepository
from relay.media.responses import multipart_response, query_int


def _media(request: Request) -> MediaRepository:
    return request.app.state.services.media


async def get_content(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/media/download/{mediaId}`"""
    media = await _media(request).local_media(
        request.path_params["media_id"], timeout_ms=query_int(request, "timeout_ms")
    )
    return multipart_response(media)


async def get_content_thumbnail(request: Request, origin: str) -> Response:
    """# `GET /_matrix/federation/v1/media/thumbnail/{mediaId}`"""
    repository = _media(request)
    thumbnail = await repository.thumbnail(
        repository.server_name,
        request.path_params["media_id"],
        query_int(request, "width", required=True) or 0,
        query_int(request, "height", required=True) or 0,
        request.query_params.get("method", "scale"),
        timeout_ms=query_int(request, "timeout_ms"),
        local_only=True,
    )
    return multipart_response(thumbnail)
