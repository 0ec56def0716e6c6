"""Cleanup of the remote media cache: least recently used beyond the quota, older than N
days, shared files kept while any row names them, local uploads never touched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from relay.media.blobs import BlobStore
from relay.media.cleanup import cleanup_database
from store import db as store_db
from store import media as store_media

DAY_MS = 86_400_000


def put(blobs: BlobStore, data: bytes) -> str:
    sha, _ = blobs.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    return sha


def add(db: Path, *, server: str, media_id: str, sha: str, size: int, at: int, remote: bool):
    conn = store_db.open_database(db, synchronous="NORMAL")
    try:
        with store_db.write(conn):
            store_media.insert_media(
                conn,
                server_name=server,
                media_id=media_id,
                remote=remote,
                user_id=None if remote else "@a:here",
                content_type="application/octet-stream",
                filename=None,
                size=size,
                sha256=sha,
                now_ms=at,
            )
    finally:
        conn.close()


def ids(db: Path) -> list[str]:
    conn = store_db.open_database(db)
    try:
        return sorted(r[0] for r in conn.execute("SELECT media_id FROM media").fetchall())
    finally:
        conn.close()


def test_quota_drops_least_recently_used_remote_media_first(tmp_path: Path) -> None:
    db, blobs = tmp_path / "relay.db", BlobStore(tmp_path / "media")
    for i, at in enumerate([3, 1, 2]):
        sha = put(blobs, bytes([i]) * 100)
        add(db, server="there", media_id=f"r{i}", sha=sha, size=100, at=at, remote=True)
    local = put(blobs, b"L" * 500)
    add(db, server="here", media_id="mine", sha=local, size=500, at=0, remote=False)

    report = cleanup_database(db, blobs, max_bytes=150, older_than_ms=None, now_ms=10)
    # r1 (used at 1) and r2 (at 2) go; r0 (at 3) fits the quota; the local upload stays.
    assert ids(db) == ["mine", "r0"]
    assert report.media_removed == 2 and report.files_removed == 2
    assert report.remote_bytes_left == 100
    assert sorted(sha for sha, _ in blobs.walk()) == sorted(
        [local, hashlib.sha256(bytes([0]) * 100).hexdigest()]
    )


def test_older_than_drops_old_remote_media_and_keeps_shared_files(tmp_path: Path) -> None:
    db, blobs = tmp_path / "relay.db", BlobStore(tmp_path / "media")
    shared = put(blobs, b"same")
    add(db, server="there", media_id="old", sha=shared, size=4, at=0, remote=True)
    add(db, server="here", media_id="mine", sha=shared, size=4, at=0, remote=False)
    fresh = put(blobs, b"fresh")
    add(db, server="there", media_id="new", sha=fresh, size=5, at=9 * DAY_MS, remote=True)

    report = cleanup_database(
        db, blobs, max_bytes=10**9, older_than_ms=7 * DAY_MS, now_ms=10 * DAY_MS
    )
    assert ids(db) == ["mine", "new"]
    assert report.media_removed == 1
    assert report.files_removed == 0  # the local upload still names the shared file
    assert blobs.exists(shared) and blobs.exists(fresh)


def test_files_no_row_names_and_stale_temp_files_go(tmp_path: Path) -> None:
    db, blobs = tmp_path / "relay.db", BlobStore(tmp_path / "media")
    orphan = put(blobs, b"crashed between file and row")
    kept = put(blobs, b"named")
    add(db, server="here", media_id="k", sha=kept, size=5, at=0, remote=False)
    stale = blobs.new_temp_path()
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    report = cleanup_database(db, blobs, max_bytes=None, older_than_ms=None, now_ms=1)
    assert not blobs.exists(orphan) and blobs.exists(kept)
    assert report.files_removed == 1
    assert not stale.exists()
