"""Periodic housekeeping: delete dedupe records nobody will ask about again, and keep
the query planner's statistics fresh (``PRAGMA optimize``).

The dedupe tables grow by a row per transaction or message; without this they grow
forever. Each run is one write through the database writer (``Database.write``).

Retention windows:

- Inbound federation transaction ids (``federation_txn_ids``) and inbound to-device
  ``message_id``s (``device_inbox_remote_messages``): 7 days. A sending server retries a
  transaction (and the EDUs in it) while it backs off from an outage, which lasts hours
  or at worst days, not weeks; Synapse keeps received transactions for one day. After a
  week a "retry" is not one, and a remote server's queue to us is long drained.
- Client transaction ids (``client_txn_ids`` for /send and friends, ``device_inbox_txns``
  for /sendToDevice) are kept for ever, unlike Synapse (which forgets them after a day):
  a phone whose request was stored but whose answer was lost may retry it only when it
  comes back days later, and a retry must never duplicate. They are a few dozen bytes a
  request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from relay.runtime import memory
from relay.runtime.clock import now_ms
from relay.runtime.database import Database
from store import Connection, DatabaseError
from store import db as store_db
from store import device_inbox as store_device_inbox
from store import fed_txns as store_fed_txns

log = logging.getLogger(__name__)

HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS
FEDERATION_TXN_RETENTION_MS = 7 * DAY_MS
REMOTE_TO_DEVICE_RETENTION_MS = 7 * DAY_MS
#: The first run waits this long after start (or one interval, if shorter), so it never
#: competes with a start-up's catch-up writes.
FIRST_RUN_DELAY_S = 60.0

#: table -> (prune function, retention in ms).
_PRUNES: dict[str, tuple[Callable[..., int], int]] = {
    "federation_txn_ids": (store_fed_txns.prune_txns, FEDERATION_TXN_RETENTION_MS),
    "device_inbox_remote_messages": (
        store_device_inbox.prune_remote_messages,
        REMOTE_TO_DEVICE_RETENTION_MS,
    ),
}


def prune(conn: Connection, now: int) -> dict[str, int]:
    """Delete every record older than its retention window at ``now`` (ms), then let
    SQLite refresh the planner's statistics where they went stale (``PRAGMA optimize``,
    so a grown table keeps its queries on their indexes); returns ``{table: rows
    deleted}``. Runs inside the caller's write transaction."""
    removed = {
        table: fn(conn, older_than_ms=now - retention_ms)
        for table, (fn, retention_ms) in _PRUNES.items()
    }
    store_db.optimize(conn)
    return removed


async def housekeep(database: Database, *, now: int | None = None) -> dict[str, int]:
    """One housekeeping run (one write); logs one info line if anything was deleted."""
    removed = await database.write(prune, now_ms() if now is None else now)
    memory.trim()
    if any(removed.values()):
        log.info(
            "housekeeping removed %s",
            ", ".join(f"{count} from {table}" for table, count in removed.items() if count),
        )
    return removed


class Housekeeping:
    """The periodic task: ``serve`` runs ``housekeep`` every ``interval_s``."""

    def __init__(self, database: Database, *, interval_s: float = 3600.0) -> None:
        self.database = database
        self.interval_s = interval_s

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(min(FIRST_RUN_DELAY_S, self.interval_s))
        while True:
            try:
                await housekeep(self.database)
            except DatabaseError:
                # A failed run deletes nothing and costs nothing: the next one catches up.
                log.exception("housekeeping failed; retrying in %.0f s", self.interval_s)
            await trio.sleep(self.interval_s)
