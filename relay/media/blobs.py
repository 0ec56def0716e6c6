"""Media files on disk, content-addressed: `<store>/ab/cd/<sha256>`, identical bytes once.

Rules kept here:

- A file is written to `<store>/tmp/` while its bytes arrive, hashed as they go, and only
  a complete one is moved into place: `fsync` the file, `os.replace` it to its address,
  `fsync` the directories the move touched. Only then may a database row name it, so a
  row never points at a file a crash could lose. Anything that goes wrong before (too
  large, a broken connection, a short body) removes the temporary file: nothing is left.
- `os.replace` over an existing address is how identical content is stored once.
- Placing a file and writing the row that names it happen under the store's shared lock
  (`lock(exclusive=False)`, an flock on `<store>/.lock`); removing rows and the files no
  row names happens under the exclusive one. So cleanup (in the relay, or `relay media
  cleanup` in another process) never removes a file a new row is about to name.
- Everything here blocks: call it from a worker thread (`BlobWriter` does so itself).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

from store.private_files import make_private_dir, open_private, write_private

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
TMP_DIR = "tmp"
LOCK_FILE = ".lock"
#: Temp files older than this are leftovers of a crash mid-upload.
STALE_TEMP_SECONDS = 24 * 3600.0


class BlobTooLarge(Exception):
    """More bytes arrived than the writer's `max_bytes`."""


class IncompleteBlob(Exception):
    """The bytes stopped before the announced length (or ran past it)."""


class BlobStore:
    """The media directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if not SHA256_HEX.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    @contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """The store's lock (blocking): shared to add files and rows, exclusive to remove."""
        make_private_dir(self.root)
        fd = open_private(self.root / LOCK_FILE, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    @asynccontextmanager
    async def alock(self, *, exclusive: bool) -> AsyncIterator[None]:
        """`lock` for trio code: waits for it in a worker thread."""
        await trio.to_thread.run_sync(make_private_dir, self.root)
        fd = open_private(self.root / LOCK_FILE, os.O_RDWR)
        try:
            await trio.to_thread.run_sync(
                fcntl.flock, fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            )
            yield
        finally:
            os.close(fd)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def tmp_dir(self) -> Path:
        path = self.root / TMP_DIR
        make_private_dir(path)
        return path

    def new_temp_path(self) -> Path:
        return self.tmp_dir() / f"upload-{secrets.token_hex(12)}"

    def place(self, temp: Path, sha256: str) -> Path:
        """Move a complete, fsynced temp file to its address and make the move durable."""
        final = self.path_for(sha256)
        created = make_private_dir(final.parent)
        os.replace(temp, final)
        _fsync_dir(final.parent)
        for directory in created:
            _fsync_dir(directory.parent)
        _fsync_dir(temp.parent)
        return final

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store `data` (a thumbnail); its sha256 and size."""
        sha256 = hashlib.sha256(data).hexdigest()
        temp = self.new_temp_path()
        try:
            write_private(temp, data)
            self.place(temp, sha256)
        finally:
            temp.unlink(missing_ok=True)
        return sha256, len(data)

    def remove(self, sha256: str) -> bool:
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def walk(self) -> Iterator[tuple[str, Path]]:
        """Every stored file as (sha256, path); temp files are not included."""
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if len(first.name) != 2 or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for path in second.iterdir():
                    if SHA256_HEX.match(path.name):
                        yield path.name, path

    def stale_temp_files(self, older_than_s: float) -> list[Path]:
        """Temp files left by a crash mid-upload (older than any upload could take)."""
        directory = self.root / TMP_DIR
        if not directory.is_dir():
            return []
        cutoff = _now() - older_than_s
        return [p for p in directory.iterdir() if p.is_file() and p.stat().st_mtime < cutoff]


def _now() -> float:
    return time.time()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Receives one file's bytes into a temp file, hashing and counting them.

    Use as `async with BlobWriter(store, max_bytes) as w: await w.write(chunk) ...;
    sha256, size = await w.commit()`. Leaving the block without `commit()` (any
    exception, cancellation included) removes the temp file.

    Raises (from `write`/`commit`):
        BlobTooLarge: more than `max_bytes` arrived.
        IncompleteBlob: `commit(expected_size=n)` with a different byte count.
    """

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._temp: Path | None = None
        self._file: Any = None  # trio's async wrapper of the temp file
        self._committed = False

    async def __aenter__(self) -> BlobWriter:
        self._temp = await trio.to_thread.run_sync(self.store.new_temp_path)
        fd = await trio.to_thread.run_sync(open_private, self._temp, os.O_WRONLY | os.O_TRUNC)
        self._file = trio.wrap_file(os.fdopen(fd, "wb"))
        return self

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise BlobTooLarge(f"more than {self.max_bytes} bytes")
        self._hash.update(chunk)
        assert self._file is not None
        await self._file.write(chunk)

    async def commit(self, expected_size: int | None = None) -> tuple[str, int]:
        """fsync and move the file into place; its (sha256, size)."""
        if expected_size is not None and expected_size != self.size:
            raise IncompleteBlob(f"got {self.size} bytes of {expected_size}")
        assert self._file is not None and self._temp is not None
        file, temp = self._file, self._temp
        sha256 = self._hash.hexdigest()

        def finish() -> None:
            file.wrapped.flush()
            os.fsync(file.wrapped.fileno())
            file.wrapped.close()
            self.store.place(temp, sha256)

        # Never abandoned: once started, the move completes (or fails) before we return.
        await trio.to_thread.run_sync(finish)
        self._committed = True
        return sha256, self.size

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        file, temp = self._file, self._temp

        def cleanup() -> None:
            if file is not None and not file.wrapped.closed:
                file.wrapped.close()
            if temp is not None and not self._committed:
                temp.unlink(missing_ok=True)

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(cleanup)
