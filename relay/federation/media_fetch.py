"""Fetching another server's media over federation, into a `BlobWriter` as it arrives.

Rules kept here:

- `GET /_matrix/federation/v1/media/download/{mediaId}` (and `/thumbnail/`), signed; the
  answer is `multipart/mixed`: a JSON part, then the file's bytes or a `Location` to GET
  them from (unsigned, not cached: it may expire). Read with `MultipartReader`.
- A server that does not know the federation media endpoints (404/405 `M_UNRECOGNIZED`)
  is asked the old way, `GET /_matrix/media/v3/download/{serverName}/{mediaId}`, and a
  thumbnail from `/_matrix/media/v3/thumbnail/...` (thumbnail first: the original is
  fetched only when no thumbnail can be had, and then made here).
- The whole transfer is bounded by `TRANSFER_SECONDS` beyond the `timeout_ms` it allows
  the origin for an async upload; the writer bounds the size.
- Errors reach the client as ours (`federation/errors.py`): not found stays 404,
  not-yet-uploaded 504, too large 502 `M_TOO_LARGE`, anything else 502 `M_UNKNOWN`.

Spec: https://spec.matrix.org/v1.16/server-server-api/#content-repository
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import trio

from relay.config import ThumbnailSize
from relay.errors import MatrixError, NotYetUploaded, TooLarge, Unknown
from relay.events.canonical import parse_json_strict
from relay.federation.client import FederationClient
from relay.federation.errors import PeerUnreachable, RemoteError, client_error
from relay.media.blobs import BlobWriter
from relay.media.headers import filename_from_disposition
from relay.media.multipart import MultipartError, MultipartReader, boundary_of

if TYPE_CHECKING:
    import httpx

TRANSFER_SECONDS = 300.0
MAX_ERROR_BYTES = 64 * 1024
UNRECOGNIZED_STATUSES = (400, 404, 405)


class Unrecognized(Exception):
    """The peer does not know the federation media endpoints."""


class FederationMedia:
    """The `RemoteMedia` the media repository is given (relay/media/repository.py)."""

    def __init__(self, client: FederationClient) -> None:
        self.client = client

    async def download(
        self, server_name: str, media_id: str, writer: BlobWriter, *, timeout_ms: int
    ) -> tuple[str | None, str | None]:
        """Write `mxc://server_name/media_id` into `writer`: (content type, filename)."""
        path = f"/_matrix/federation/v1/media/download/{quote(media_id, safe='')}"
        with trio.fail_after(timeout_ms / 1000 + TRANSFER_SECONDS):
            try:
                return await self._multipart(
                    server_name, path, {"timeout_ms": str(timeout_ms)}, writer
                )
            except Unrecognized:
                legacy = (
                    f"/_matrix/media/v3/download/{quote(server_name, safe='')}/"
                    f"{quote(media_id, safe='')}"
                )
                query = {"allow_remote": "false", "timeout_ms": str(timeout_ms)}
                return await self._plain(server_name, writer, path=legacy, query=query)

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        size: ThumbnailSize,
        writer: BlobWriter,
        *,
        timeout_ms: int,
    ) -> str | None:
        """Write a thumbnail into `writer`: its content type, or None if the peer does
        not serve federation thumbnails (make one from the original instead)."""
        path = f"/_matrix/federation/v1/media/thumbnail/{quote(media_id, safe='')}"
        query = {
            "width": str(size.width),
            "height": str(size.height),
            "method": size.method,
            "animated": "false",
            "timeout_ms": str(timeout_ms),
        }
        with trio.fail_after(timeout_ms / 1000 + TRANSFER_SECONDS):
            try:
                content_type, _ = await self._multipart(server_name, path, query, writer)
            except Unrecognized:
                # A server older than the federation media endpoints: its own thumbnail
                # still spares a slow link the whole original.
                legacy = (
                    f"/_matrix/media/v3/thumbnail/{quote(server_name, safe='')}/"
                    f"{quote(media_id, safe='')}"
                )
                try:
                    content_type, _ = await self._plain(
                        server_name, writer, path=legacy, query=query | {"allow_remote": "false"}
                    )
                except MatrixError:
                    return None
        return content_type or "application/octet-stream"

    async def _multipart(
        self, server_name: str, path: str, query: dict[str, str], writer: BlobWriter
    ) -> tuple[str | None, str | None]:
        try:
            async with self.client.stream_get(server_name, path, query) as response:
                if response.status_code != 200:
                    await self._raise_for(server_name, response, unrecognized_ok=True)
                try:
                    reader = MultipartReader(boundary_of(response.headers.get("content-type")))
                    async for chunk in response.aiter_bytes():
                        data = reader.feed(chunk)
                        if reader.headers is not None and "location" in reader.headers:
                            break
                        await writer.write(data)
                        if reader.done:
                            break
                    headers = reader.headers or {}
                    if "location" not in headers:
                        reader.finish()
                except MultipartError as exc:
                    raise Unknown(f"request to {server_name} failed: {exc}", status=502) from None
        except PeerUnreachable as exc:
            raise client_error(exc) from None
        if "location" in headers:
            return await self._plain(server_name, writer, url=headers["location"])
        return headers.get("content-type"), filename_from_disposition(
            headers.get("content-disposition")
        )

    async def _plain(
        self,
        server_name: str,
        writer: BlobWriter,
        *,
        path: str = "",
        query: dict[str, str] | None = None,
        url: str | None = None,
    ) -> tuple[str | None, str | None]:
        """A plain (non-multipart) media body: a `Location`, or the legacy endpoint."""
        try:
            async with self.client.stream_get(server_name, path, query, url=url) as response:
                if response.status_code != 200:
                    await self._raise_for(server_name, response, unrecognized_ok=False)
                async for chunk in response.aiter_bytes():
                    await writer.write(chunk)
                headers = response.headers
                return headers.get("content-type"), filename_from_disposition(
                    headers.get("content-disposition")
                )
        except PeerUnreachable as exc:
            raise client_error(exc) from None

    async def _raise_for(
        self, server_name: str, response: httpx.Response, *, unrecognized_ok: bool
    ) -> None:
        raw = b""
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_ERROR_BYTES:
                break
        try:
            doc = parse_json_strict(raw)
        except ValueError:
            doc = None
        errcode = doc.get("errcode") if isinstance(doc, dict) else None
        status = response.status_code
        if unrecognized_ok and status in UNRECOGNIZED_STATUSES and errcode == "M_UNRECOGNIZED":
            raise Unrecognized()
        if unrecognized_ok and status in (404, 405) and errcode is None:
            raise Unrecognized()  # a server (or proxy) without the endpoint at all
        message = doc.get("error") if isinstance(doc, dict) else None
        error: MatrixError
        if errcode == "M_NOT_YET_UPLOADED":
            error = NotYetUploaded(str(message or errcode))
        elif errcode == "M_TOO_LARGE":
            error = TooLarge(str(message or errcode), status=502)
        else:
            error = client_error(RemoteError(server_name, status, errcode, str(message or status)))
        raise error
