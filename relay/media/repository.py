"""The content repository service: what the media routes (client and federation) call.

Rules kept here:

- Uploads stream into a `BlobWriter` (never whole in memory) under `max_upload_bytes`;
  the row is written only after the file is durably in place, so a refused, cut or
  short upload leaves no file and no row.
- Media ids are 24 random letters and digits (the spec's media-id alphabet is wider;
  ours never needs escaping). Server names and media ids from requests are checked
  before they reach the store or the disk.
- `/create` reserves an id for `UNUSED_EXPIRES_MS`; only its creator may upload to it,
  once (`M_CANNOT_OVERWRITE_MEDIA`). A download of a reserved id waits up to `timeout_ms`
  for the upload, then answers 504 `M_NOT_YET_UPLOADED`.
- Remote media is fetched through `remote` (the federation side, wired by the node), one
  fetch per id at a time, cached as `remote` rows, and the cache is shrunk back under
  `remote_cache_max_bytes` after each fetch (`cleanup.py`).
- Thumbnails are made on demand at the configured sizes and cached content-addressed.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio

from relay.config import DEFAULT_THUMBNAIL_SIZES, Config, ThumbnailSize, parse_size
from relay.errors import (
    CannotOverwriteMedia,
    Forbidden,
    InvalidParam,
    LimitExceeded,
    MatrixError,
    NotFound,
    NotYetUploaded,
    TooLarge,
    Unknown,
)
from relay.events.ids import is_valid_server_name
from relay.media import cleanup
from relay.media.blobs import BlobStore, BlobTooLarge, BlobWriter, IncompleteBlob
from relay.media.thumbnails import (
    ImageTooLarge,
    NotAnImage,
    choose_size,
    is_thumbnailable,
    make_thumbnail,
)
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from store import media as store_media

log = logging.getLogger(__name__)

MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MEDIA_ID_ALPHABET = string.ascii_letters + string.digits
UNUSED_EXPIRES_MS = 24 * 3600 * 1000
MAX_PENDING_UPLOADS = 50
DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000
#: A download refreshes a row's last access at most this often (a write per read is waste).
TOUCH_EVERY_MS = 60_000
#: Thumbnails made at once: one decoded image in memory at a time (see `thumbnails.py`).
THUMBNAILERS = 1


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A file ready to serve."""

    path: Path
    content_type: str | None
    filename: str | None
    size: int


class IncompleteUpload(Exception):
    """The client's body ended before its Content-Length (or went past it)."""


class RemoteMedia(Protocol):
    """The federation side (relay/federation/media_fetch.py), as the repository uses it."""

    async def download(
        self, server_name: str, media_id: str, writer: BlobWriter, *, timeout_ms: int
    ) -> tuple[str | None, str | None]: ...

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        size: ThumbnailSize,
        writer: BlobWriter,
        *,
        timeout_ms: int,
    ) -> str | None: ...


def check_media_id(server_name: str, media_id: str) -> None:
    """Raises NotFound for ids that cannot exist (and must not reach the disk)."""
    if not is_valid_server_name(server_name) or not MEDIA_ID.match(media_id):
        raise NotFound("Media not found")


def clamp_timeout(timeout_ms: int | None) -> int:
    if timeout_ms is None:
        return DEFAULT_TIMEOUT_MS
    return max(0, min(timeout_ms, MAX_TIMEOUT_MS))


class MediaRepository:
    def __init__(
        self,
        database: Database,
        config: Config,
        *,
        remote: RemoteMedia | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.database = database
        self.server_name = config.server_name
        self.settings = config.media
        self.blobs = BlobStore(config.media_store)
        self.remote = remote
        self.clock = clock
        self._uploaded: dict[str, trio.Event] = {}
        self._fetch_locks: dict[tuple[str, str], trio.Lock] = {}
        #: Decoding images is CPU and memory: a small box makes few thumbnails at once.
        self._thumbnailers = trio.CapacityLimiter(THUMBNAILERS)

    @property
    def max_upload_bytes(self) -> int:
        return self.settings.max_upload_bytes

    # --- uploads -------------------------------------------------------------------

    @asynccontextmanager
    async def _receive(
        self, chunks: AsyncIterator[bytes], expected_length: int | None
    ) -> AsyncIterator[tuple[str, int]]:
        """Stream a body into the blob store and yield its (sha256, size) while holding
        the store's shared lock: write the row that names the file inside the block.

        Raises:
            TooLarge: over `max_upload_bytes` (nothing kept).
            IncompleteUpload: fewer or more bytes than `expected_length` (nothing kept).
        """
        if expected_length is not None and expected_length > self.max_upload_bytes:
            raise TooLarge(f"Upload is larger than {self.max_upload_bytes} bytes")
        try:
            async with BlobWriter(self.blobs, self.max_upload_bytes) as writer:
                async for chunk in chunks:
                    await writer.write(chunk)
                async with self.blobs.alock(exclusive=False):
                    yield await writer.commit(expected_length)
        except BlobTooLarge:
            raise TooLarge(f"Upload is larger than {self.max_upload_bytes} bytes") from None
        except IncompleteBlob as exc:
            raise IncompleteUpload(str(exc)) from None

    def new_media_id(self) -> str:
        return "".join(secrets.choice(MEDIA_ID_ALPHABET) for _ in range(24))

    async def upload(
        self,
        user_id: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str | None,
        filename: str | None,
        expected_length: int | None,
    ) -> str:
        """Store a new upload; its mxc:// URI."""
        media_id = self.new_media_id()
        async with self._receive(chunks, expected_length) as (sha256, size):
            await self.database.write(
                lambda conn: store_media.insert_media(
                    conn,
                    server_name=self.server_name,
                    media_id=media_id,
                    remote=False,
                    user_id=user_id,
                    content_type=content_type,
                    filename=filename,
                    size=size,
                    sha256=sha256,
                    now_ms=self.clock(),
                )
            )
        return f"mxc://{self.server_name}/{media_id}"

    async def create(self, user_id: str) -> tuple[str, int]:
        """Reserve an id for an async upload: (mxc URI, unused_expires_at)."""
        now = self.clock()
        expires = now + UNUSED_EXPIRES_MS
        media_id = self.new_media_id()

        def txn(conn: Any) -> None:
            if store_media.count_pending_uploads(conn, user_id, now) >= MAX_PENDING_UPLOADS:
                raise LimitExceeded("Too many pending uploads", retry_after_ms=60_000)
            store_media.insert_media(
                conn,
                server_name=self.server_name,
                media_id=media_id,
                remote=False,
                user_id=user_id,
                content_type=None,
                filename=None,
                size=None,
                sha256=None,
                now_ms=now,
                unused_expires_ts=expires,
            )

        await self.database.write(txn)
        return f"mxc://{self.server_name}/{media_id}", expires

    async def upload_to(
        self,
        user_id: str,
        server_name: str,
        media_id: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str | None,
        filename: str | None,
        expected_length: int | None,
    ) -> None:
        """The content of an id reserved by `create`."""
        if server_name != self.server_name:
            raise NotFound("Media not found")
        check_media_id(server_name, media_id)
        row = await self.database.read(store_media.get_media, server_name, media_id)
        self._check_reserved(row, user_id)
        async with self._receive(chunks, expected_length) as (sha256, size):
            completed = await self.database.write(
                lambda conn: store_media.complete_media(
                    conn,
                    server_name=server_name,
                    media_id=media_id,
                    content_type=content_type,
                    filename=filename,
                    size=size,
                    sha256=sha256,
                    now_ms=self.clock(),
                )
            )
        if not completed:
            raise CannotOverwriteMedia("Media ID already has content")
        event = self._uploaded.pop(media_id, None)
        if event is not None:
            event.set()

    def _check_reserved(self, row: dict[str, Any] | None, user_id: str) -> None:
        if row is None or row["remote"]:
            raise NotFound("Media not found")
        if row["user_id"] != user_id:
            raise Forbidden("You did not create this media ID")
        if row["sha256"] is not None:
            raise CannotOverwriteMedia("Media ID already has content")
        if (row["unused_expires_ts"] or 0) < self.clock():
            raise NotFound("Media ID expired")

    # --- downloads -----------------------------------------------------------------

    async def local_media(self, media_id: str, *, timeout_ms: int | None = None) -> MediaFile:
        """Our own media (what other servers may fetch), waiting for an async upload."""
        check_media_id(self.server_name, media_id)
        row = await self.database.read(store_media.get_media, self.server_name, media_id)
        if row is not None and row["sha256"] is None and not row["remote"]:
            row = await self._wait_for_upload(media_id, clamp_timeout(timeout_ms))
        if row is None or row["remote"]:
            raise NotFound("Media not found")
        return await self._file_of(row)

    async def _wait_for_upload(self, media_id: str, timeout_ms: int) -> dict[str, Any] | None:
        event = self._uploaded.setdefault(media_id, trio.Event())
        with trio.move_on_after(timeout_ms / 1000):
            await event.wait()
        row = await self.database.read(store_media.get_media, self.server_name, media_id)
        if row is not None and row["sha256"] is None:
            if (row["unused_expires_ts"] or 0) < self.clock():
                return None
            raise NotYetUploaded("Media has not been uploaded yet")
        return row

    async def _file_of(self, row: dict[str, Any]) -> MediaFile:
        path = self.blobs.path_for(row["sha256"])
        if not await trio.to_thread.run_sync(path.is_file):
            log.warning("media %s/%s: file %s missing", row["server_name"], row["media_id"], path)
            raise NotFound("Media not found")
        if self.clock() - row["last_access_ts"] > TOUCH_EVERY_MS:
            await self.database.write(
                store_media.touch_media, row["server_name"], row["media_id"], self.clock()
            )
        return MediaFile(path, row["content_type"], row["filename"], row["size"])

    async def media(
        self, server_name: str, media_id: str, *, timeout_ms: int | None = None
    ) -> MediaFile:
        """Any server's media: ours, or another's (cached, fetched over federation)."""
        check_media_id(server_name, media_id)
        if server_name == self.server_name:
            return await self.local_media(media_id, timeout_ms=timeout_ms)
        row = await self.database.read(store_media.get_media, server_name, media_id)
        if row is not None and row["sha256"] is not None and self.blobs.exists(row["sha256"]):
            return await self._file_of(row)
        lock = self._fetch_locks.setdefault((server_name, media_id), trio.Lock())
        async with lock:
            row = await self.database.read(store_media.get_media, server_name, media_id)
            if row is None or row["sha256"] is None or not self.blobs.exists(row["sha256"]):
                row = await self._fetch_remote(server_name, media_id, clamp_timeout(timeout_ms))
        self._fetch_locks.pop((server_name, media_id), None)
        return await self._file_of(row)

    async def _fetch_remote(self, server_name: str, media_id: str, timeout_ms: int) -> dict:
        if self.remote is None:
            raise NotFound("Media not found")
        now = self.clock()
        try:
            async with BlobWriter(self.blobs, self.max_upload_bytes) as writer:
                content_type, filename = await self.remote.download(
                    server_name, media_id, writer, timeout_ms=timeout_ms
                )
                async with self.blobs.alock(exclusive=False):
                    sha256, size = await writer.commit()

                    def txn(conn: Any) -> dict:
                        store_media.insert_media(
                            conn,
                            server_name=server_name,
                            media_id=media_id,
                            remote=True,
                            user_id=None,
                            content_type=content_type,
                            filename=filename,
                            size=size,
                            sha256=sha256,
                            now_ms=now,
                        )
                        return store_media.get_media(conn, server_name, media_id) or {}

                    row = await self.database.write(txn)
        except BlobTooLarge:
            raise TooLarge("Remote media is too large", status=502) from None
        await self.enforce_quota(keep=sha256)
        return row

    async def enforce_quota(self, keep: str | None = None) -> cleanup.CleanupReport:
        """Shrink the remote cache back under its quota (never touches local media).
        `keep` (what was just fetched) is served even when it alone is over the quota."""
        limit = self.settings.remote_cache_max_bytes
        async with self.blobs.alock(exclusive=True):
            report = await self.database.write(
                lambda conn: cleanup.delete_cache_rows(
                    conn, max_bytes=limit, older_than_ms=None, now_ms=self.clock()
                )
            )
            report.unreferenced.discard(keep or "")
            await trio.to_thread.run_sync(cleanup.remove_files, self.blobs, report)
        return report

    # --- thumbnails ----------------------------------------------------------------

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: str,
        *,
        timeout_ms: int | None = None,
        local_only: bool = False,
    ) -> MediaFile:
        """A thumbnail of any server's media (`local_only`: ours, for federation)."""
        check_media_id(server_name, media_id)
        if width <= 0 or height <= 0 or method not in ("crop", "scale"):
            raise InvalidParam("width and height must be positive; method crop or scale")
        if local_only and server_name != self.server_name:
            raise NotFound("Media not found")
        sizes = self.settings.thumbnail_sizes or tuple(
            parse_size(s) for s in DEFAULT_THUMBNAIL_SIZES
        )
        size = choose_size(sizes, width, height, method)
        remote = server_name != self.server_name
        cached = await self.database.read(
            store_media.get_thumbnail, server_name, media_id, size.width, size.height, size.method
        )
        if cached is not None and self.blobs.exists(cached["sha256"]):
            if self.clock() - cached["last_access_ts"] > TOUCH_EVERY_MS:
                await self.database.write(
                    store_media.touch_thumbnail,
                    server_name,
                    media_id,
                    size.width,
                    size.height,
                    size.method,
                    self.clock(),
                )
            return MediaFile(
                self.blobs.path_for(cached["sha256"]), cached["content_type"], None, cached["size"]
            )
        if remote:
            row = await self.database.read(store_media.get_media, server_name, media_id)
            if row is None or row["sha256"] is None or not self.blobs.exists(row["sha256"]):
                fetched = await self._fetch_remote_thumbnail(
                    server_name, media_id, size, clamp_timeout(timeout_ms)
                )
                if fetched is not None:
                    return fetched
        original = await self.media(server_name, media_id, timeout_ms=timeout_ms)
        return await self._make_thumbnail(server_name, media_id, original, size, remote)

    async def _make_thumbnail(
        self,
        server_name: str,
        media_id: str,
        original: MediaFile,
        size: ThumbnailSize,
        remote: bool,
    ) -> MediaFile:
        if not is_thumbnailable(original.content_type):
            raise NotFound("Cannot generate thumbnails for this content")
        try:
            made = await trio.to_thread.run_sync(
                lambda: make_thumbnail(
                    original.path, size, max_pixels=self.settings.max_image_pixels
                ),
                limiter=self._thumbnailers,
            )
        except ImageTooLarge:
            raise TooLarge("Image is too large to thumbnail") from None
        except NotAnImage:
            raise NotFound("Cannot generate thumbnails for this content") from None
        if made is None:  # already within the box: the original, never upscaled
            return original
        data, content_type, _, _ = made
        async with self.blobs.alock(exclusive=False):
            sha256, length = await trio.to_thread.run_sync(self.blobs.put_bytes, data)
            await self.database.write(
                lambda conn: store_media.upsert_thumbnail(
                    conn,
                    server_name=server_name,
                    media_id=media_id,
                    width=size.width,
                    height=size.height,
                    method=size.method,
                    remote=remote,
                    content_type=content_type,
                    size=length,
                    sha256=sha256,
                    now_ms=self.clock(),
                )
            )
        return MediaFile(self.blobs.path_for(sha256), content_type, None, length)

    async def _fetch_remote_thumbnail(
        self, server_name: str, media_id: str, size: ThumbnailSize, timeout_ms: int
    ) -> MediaFile | None:
        """A thumbnail from the media's server, or None to make one from the original."""
        if self.remote is None:
            raise NotFound("Media not found")
        try:
            async with BlobWriter(self.blobs, self.max_upload_bytes) as writer:
                content_type = await self.remote.thumbnail(
                    server_name, media_id, size, writer, timeout_ms=timeout_ms
                )
                if content_type is None:
                    return None
                async with self.blobs.alock(exclusive=False):
                    sha256, length = await writer.commit()
                    await self.database.write(
                        lambda conn: store_media.upsert_thumbnail(
                            conn,
                            server_name=server_name,
                            media_id=media_id,
                            width=size.width,
                            height=size.height,
                            method=size.method,
                            remote=True,
                            content_type=content_type,
                            size=length,
                            sha256=sha256,
                            now_ms=self.clock(),
                        )
                    )
        except BlobTooLarge:
            raise TooLarge("Remote thumbnail is too large", status=502) from None
        except MatrixError as exc:
            if isinstance(exc, NotFound | Unknown):
                return None  # let the original decide (it says not found, or is made here)
            raise
        await self.enforce_quota(keep=sha256)
        return MediaFile(self.blobs.path_for(sha256), content_type, None, length)
