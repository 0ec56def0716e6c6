"""Summary numbers for ``relay status`` and ``/metrics``.

Rules kept: read-only, cheap enough to call on every status request; run it inside
``store.read()`` for a consistent snapshot (``snapshot`` opens that transaction itself,
so ``relay status`` cannot read its figures from different moments). ``database`` (rows
of every table) counts every row: for ``relay status`` and the operator page, not ``/metrics``;
it reads the table list through sqlite-utils' introspection, so a table a migration adds
shows up without a line here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from store import db
from store.accounts import count_users
from store.events import count_events, max_stream_ordering
from store.media import statistics as media_statistics
from store.outbox import depths, destination_status
from store.rooms import count_rooms

__all__ = ["counts", "database", "snapshot", "snapshot_txn", "statistics"]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """``{"users": n, "rooms": n, "events": n}``."""
    return {
        "users": count_users(conn),
        "rooms": count_rooms(conn),
        "events": count_events(conn),
    }


def statistics(conn: sqlite3.Connection) -> dict[str, int]:
    """``counts`` plus ``stream_position`` and ``outbox`` (total queued rows)."""
    stats = counts(conn)
    stats["stream_position"] = max_stream_ordering(conn)
    stats["outbox"] = sum(depths(conn).values())
    return stats


def database(conn: sqlite3.Connection) -> dict[str, Any]:
    """The database itself: ``schema_version``, ``bytes`` (pages in use times the page
    size: the main file, WAL aside) and ``rows`` (``{table: rows}``, every table of ours,
    largest first, then by name)."""
    utils = db.utils(conn)
    rows = {
        table.name: table.count
        for table in utils.tables
        if not table.name.startswith("sqlite_")  # SQLite's own bookkeeping
    }
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return {
        "schema_version": db.schema_version(conn),
        "bytes": int(pages) * int(page_size),
        "rows": dict(sorted(rows.items(), key=lambda item: (-item[1], item[0]))),
    }


def snapshot(conn: sqlite3.Connection) -> dict[str, Any]:
    """``snapshot_txn`` in a read transaction of its own (``db.read``); ``conn`` must not
    be in a transaction."""
    with db.read(conn):
        return snapshot_txn(conn)


def snapshot_txn(conn: sqlite3.Connection) -> dict[str, Any]:
    """Everything ``relay status`` shows: ``counts``, ``media`` (``store.media.statistics``:
    stored media by media id, local, cached remote and thumbnails; identical bytes share
    one file, so the bytes may exceed the disk's), ``depths`` (``{destination: queued
    rows}``), ``destinations`` (``outbox.destination_status`` rows, as dicts) and
    ``database`` (``database``: schema version, size, rows per table). Run it in one read
    transaction for a consistent snapshot."""
    return {
        "counts": counts(conn),
        "database": database(conn),
        "media": media_statistics(conn),
        "depths": depths(conn),
        "destinations": [dict(row) for row in destination_status(conn)],
    }
