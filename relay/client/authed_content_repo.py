"""Downloading media, authenticated (matrix-spec `client-server/authed-content-repo.yaml`).

- `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`: the file
  (ours, or another server's fetched over federation and cached), with
  Content-Type, Content-Disposition (inline only for safe types) and the spec's
  Content-Security-Policy.
- `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}?width&height&method`:
  a thumbnail at the nearest configured size (`media.thumbnail_sizes`); images only.
- `GET /_matrix/client/v1/media/config`: `m.upload.size` (also under the deprecated
  `/_matrix/media/v3/config`, which Synapse still serves).
- `GET /_matrix/client/v1/media/preview_url`: URL previews are off (a box in the field
  must not fetch arbitrary URLs for its users): 404 `M_NOT_FOUND`.

- The deprecated unauthenticated downloads (`/_matrix/media/v3/download`, `/thumbnail`)
  answer 404 `M_NOT_FOUND`, as Synapse answers them for media stored since it turned on
  authenticated media (here: all media), so old clients move to the v1 endpoints.

Spec: https://spec.matrix.org/v1.16/client-server-api/#content-repository
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.accounts import Requester
from relay.client.content_repo import MEDIA_V3
from relay.client.route import ClientRoute
from relay.errors import NotFound
from relay.media.repository import MediaRepository
from relay.media.responses import file_response, query_int
from relay.runtime.http import json_response

CLIENT_V1 = ("/_matrix/client/v1",)


def _media(request: Request) -> MediaRepository:
    return request.app.state.services.media


async def get_content(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`"""
    media = await _media(request).media(
        request.path_params["server_name"],
        request.path_params["media_id"],
        timeout_ms=query_int(request, "timeout_ms"),
    )
    return file_response(media, request.path_params.get("file_name"))


async def get_content_thumbnail(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`"""
    thumbnail = await _media(request).thumbnail(
        request.path_params["server_name"],
        request.path_params["media_id"],
        query_int(request, "width", required=True) or 0,
        query_int(request, "height", required=True) or 0,
        request.query_params.get("method", "scale"),
        timeout_ms=query_int(request, "timeout_ms"),
    )
    return file_response(thumbnail)


async def get_config(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/media/config`"""
    return json_response({"m.upload.size": _media(request).max_upload_bytes})


async def legacy_download(request: Request) -> Response:
    """# `GET /_matrix/media/v3/download/...`, `/_matrix/media/v3/thumbnail/...`"""
    raise NotFound("Not found")


async def get_url_preview(request: Request, requester: Requester) -> Response:
    """# `GET /_matrix/client/v1/media/preview_url`"""
    raise NotFound("URL previews are disabled on this server")


ROUTES = [
    ClientRoute(
        "/media/download/{server_name}/{media_id}", get_content, ("GET",), prefixes=CLIENT_V1
    ),
    ClientRoute(
        "/media/download/{server_name}/{media_id}/{file_name}",
        get_content,
        ("GET",),
        prefixes=CLIENT_V1,
        raw_path=True,  # a file name may hold an encoded "/" (mc%2Fdl%2Fimg.enc)
    ),
    ClientRoute(
        "/media/thumbnail/{server_name}/{media_id}",
        get_content_thumbnail,
        ("GET",),
        prefixes=CLIENT_V1,
    ),
    ClientRoute("/media/config", get_config, ("GET",), prefixes=CLIENT_V1),
    ClientRoute("/config", get_config, ("GET",), prefixes=MEDIA_V3),
    ClientRoute(
        "/download/{server_name}/{media_id}",
        legacy_download,
        ("GET",),
        auth=False,
        prefixes=MEDIA_V3,
    ),
    ClientRoute(
        "/download/{server_name}/{media_id}/{file_name}",
        legacy_download,
        ("GET",),
        auth=False,
        prefixes=MEDIA_V3,
    ),
    ClientRoute(
        "/thumbnail/{server_name}/{media_id}",
        legacy_download,
        ("GET",),
        auth=False,
        prefixes=MEDIA_V3,
    ),
    ClientRoute("/media/preview_url", get_url_preview, ("GET",), prefixes=CLIENT_V1),
]
