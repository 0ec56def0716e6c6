"""Summary numbers for ``relay status`` and ``/metrics``.

Rules kept: read-only, cheap enough to call on every status request; run it inside
``store.read()`` for a consistent snapshot (``snapshot`` opens that transaction itself,
so ``relay status`` cannot read its figures from different moments).
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

__all__ = ["counts", "snapshot", "snapshot_txn", "statistics"]


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


def snapshot(conn: sqlite3.Connection) -> dict[str, Any]:
    """``snapshot_txn`` in a read transaction of its own (``db.read``); ``conn`` must not
    be in a transaction."""
    with db.read(conn):
        return snapshot_txn(conn)


def snapshot_txn(conn: sqlite3.Connection) -> dict[str, Any]:
    """Everything ``relay status`` shows: ``counts``, ``media`` (``store.media.statistics``:
    stored media by media id, local, cached remote and thumbnails; identical bytes share
    one file, so the bytes may exceed the disk's), ``depths`` (``{destination: queued
    rows}``) and ``destinations`` (``outbox.destination_status`` rows, as dicts). Run it
    in one read transaction for a consistent snapshot."""
    return {
        "counts": counts(conn),
        "media": media_statistics(conn),
        "depths": depths(conn),
        "destinations": [dict(row) for row in destination_status(conn)],
    }
