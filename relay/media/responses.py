"""Media as HTTP responses: a file to a client, a file wrapped in `multipart/mixed` for a
server. Both stream from disk (never the whole file in memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from relay.errors import InvalidParam, MissingParam
from relay.media.headers import (
    SAFETY_HEADERS,
    content_disposition,
    content_type_header,
    media_headers,
)
from relay.media.multipart import new_boundary, render_head, render_tail
from relay.media.repository import MediaFile

CHUNK = 64 * 1024


def file_response(media: MediaFile, filename: str | None = None) -> Response:
    """The file, with the headers Synapse serves media with; `filename` overrides the
    uploaded name (the `/download/.../{fileName}` form)."""
    headers = media_headers(media.content_type, filename or media.filename)
    return FileResponse(
        media.path,
        media_type=headers.pop("Content-Type"),
        headers=headers,
        stat_result=None,
    )


def multipart_response(media: MediaFile) -> Response:
    """The federation form: `{}` metadata, then the file with its own headers."""
    boundary = new_boundary()
    head = render_head(
        boundary,
        {
            "Content-Type": content_type_header(media.content_type),
            "Content-Disposition": content_disposition(media.content_type, media.filename),
        },
    )
    tail = render_tail(boundary)

    async def body() -> AsyncIterator[bytes]:
        yield head
        async with await trio.open_file(media.path, "rb") as f:
            while chunk := await f.read(CHUNK):
                yield chunk
        yield tail

    return StreamingResponse(
        body(),
        media_type=f"multipart/mixed; boundary={boundary}",
        headers={
            "Content-Length": str(len(head) + media.size + len(tail)),
            **SAFETY_HEADERS,
        },
    )


def query_int(request: Request, name: str, *, required: bool = False) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        if required:
            raise MissingParam(f"Missing {name}")
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidParam(f"{name} must be an integer") from None
