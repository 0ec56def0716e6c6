"""Summary numbers for ``relay status`` and ``/metrics``.

Rules kept: read-only, cheap enough to call on every status request; run it inside
``store.read()`` for a consistent snapshot.
"""

from __future__ import annotations

import sqlite3

from store.accounts import count_users
from store.events import count_events, max_stream_ordering
from store.outbox import depths
from store.rooms import count_rooms

__all__ = ["counts", "statistics"]


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
