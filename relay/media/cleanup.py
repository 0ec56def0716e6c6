"""Shrinking the remote media cache, and removing files no row names.

Rules kept here:

- Only what was cached from other servers is ever dropped (remote media and remote
  thumbnails): our own users' uploads are never removed by cleanup.
- What goes: everything last used more than `older_than_ms` ago, then the least
  recently used until the cache is under `max_bytes`. Thumbnails of local media whose
  original is gone go too.
- Rows are deleted in one transaction; a file is removed only when no row names it any
  more (identical content may be shared by several rows, local ones included).
- All of it runs under the store's exclusive lock (`BlobStore.lock`), so it is safe while
  the relay runs: an upload holds the shared lock from placing its file to writing its row.
- With `remove_orphans`, files no row names at all (a crash between file and row) and
  temp files older than a day are removed as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from relay.media.blobs import STALE_TEMP_SECONDS, BlobStore
from store import Connection
from store import db as store_db
from store import media as store_media


@dataclass
class CleanupReport:
    media_removed: int = 0
    thumbnails_removed: int = 0
    files_removed: int = 0
    bytes_freed: int = 0
    remote_bytes_left: int = 0
    #: sha256s whose files may go (their rows are gone); filled by `delete_cache_rows`.
    unreferenced: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {
            "media_removed": self.media_removed,
            "thumbnails_removed": self.thumbnails_removed,
            "files_removed": self.files_removed,
            "bytes_freed": self.bytes_freed,
            "remote_bytes_left": self.remote_bytes_left,
        }


def delete_cache_rows(
    conn: Connection, *, max_bytes: int | None, older_than_ms: int | None, now_ms: int
) -> CleanupReport:
    """Delete the cache rows that must go (inside the caller's write transaction)."""
    report = CleanupReport()
    entries = store_media.remote_cache_entries(conn)  # least recently used first
    total = sum(e["size"] or 0 for e in entries)
    victims = []
    for entry in entries:
        too_old = older_than_ms is not None and entry["last_access_ts"] < now_ms - older_than_ms
        over = max_bytes is not None and total > max_bytes
        if not (too_old or over):
            continue
        victims.append(entry)
        total -= entry["size"] or 0
    candidates: set[str] = set()
    for entry in victims:
        if entry["kind"] == "media":
            store_media.delete_media(conn, entry["server_name"], entry["media_id"])
            report.media_removed += 1
        else:
            store_media.delete_thumbnail(
                conn,
                entry["server_name"],
                entry["media_id"],
                entry["width"],
                entry["height"],
                entry["method"],
            )
            report.thumbnails_removed += 1
        candidates.add(entry["sha256"])
    candidates.update(store_media.orphan_thumbnail_sha256s(conn))
    report.thumbnails_removed += store_media.delete_orphan_thumbnails(conn)
    report.unreferenced = {
        sha for sha in candidates if not store_media.is_sha256_referenced(conn, sha)
    }
    report.remote_bytes_left = max(total, 0)
    return report


def remove_files(blobs: BlobStore, report: CleanupReport) -> None:
    for sha256 in sorted(report.unreferenced):
        path = blobs.path_for(sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if blobs.remove(sha256):
            report.files_removed += 1
            report.bytes_freed += size


def remove_orphans(blobs: BlobStore, referenced: set[str], report: CleanupReport) -> None:
    for sha256, path in list(blobs.walk()):
        if sha256 in referenced:
            continue
        size = path.stat().st_size
        if blobs.remove(sha256):
            report.files_removed += 1
            report.bytes_freed += size
    for temp in blobs.stale_temp_files(STALE_TEMP_SECONDS):
        temp.unlink(missing_ok=True)


def cleanup_database(
    database_path: Path,
    blobs: BlobStore,
    *,
    max_bytes: int | None,
    older_than_ms: int | None,
    now_ms: int,
    synchronous: str = "FULL",
) -> CleanupReport:
    """The whole cleanup over the database file (the CLI's; blocks)."""
    with blobs.lock(exclusive=True):
        conn = store_db.open_database(database_path, synchronous=synchronous)
        try:
            with store_db.write(conn):
                report = delete_cache_rows(
                    conn, max_bytes=max_bytes, older_than_ms=older_than_ms, now_ms=now_ms
                )
            remove_files(blobs, report)
            with store_db.read(conn):
                referenced = store_media.referenced_sha256s(conn)
            remove_orphans(blobs, referenced, report)
        finally:
            conn.close()
    return report
